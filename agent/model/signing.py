"""Package integrity and authenticity: ``CHECKSUMS`` over every file, a minisign signature over it.

``CHECKSUMS`` holds ``<sha256>  <relative path>`` lines sorted by path (``sha256sum -c``
reads it). Verification insists the listing is exact: every listed file present and
matching, and no unlisted file in the package, so nothing can be slipped in beside a
signed model. ``CHECKSUMS.minisig`` is a minisign signature (:mod:`agent.model.minisign`)
whose trusted comment carries the package's name and version, so a team can sign with
``minisign -Sm CHECKSUMS -t "name=… version=…"``. The older bare ed25519 ``signature`` file
still verifies, with a warning, for one more release. Trusted keys are minisign public keys,
PEM or 32-byte hex; ``cryptography`` (the ``sign`` extra) is imported only here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import structlog

from agent.errors import ModelError, RuntimeMissingError
from agent.model import minisign
from agent.model.manifest import read_manifest
from agent.model.package import MANIFEST, file_sha256, inside

log = structlog.get_logger(__name__)

CHECKSUMS = "CHECKSUMS"
MINISIG = "CHECKSUMS.minisig"
SIGNATURE = "signature"  # the bare ed25519 signature of earlier releases: verified with a warning
_UNLISTED = {CHECKSUMS, SIGNATURE, MINISIG}


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise RuntimeMissingError(
            "package signatures need the 'cryptography' library "
            "(install the extra: pip install 'edge-inspection-agent[sign]')"
        ) from exc
    return ed25519


def package_files(root: Path) -> list[str]:
    """Every file in the package except CHECKSUMS and signature, as sorted POSIX relative paths."""
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise ModelError(f"package file {rel} is a symbolic link (not allowed in a package)")
        if path.is_file() and rel not in _UNLISTED:
            found.append(rel)
    return sorted(found)


def write_checksums(root: Path) -> Path:
    lines = [f"{file_sha256(root / rel)}  {rel}\n" for rel in package_files(root)]
    target = root / CHECKSUMS
    target.write_text("".join(lines), encoding="utf-8")
    return target


def read_checksums(root: Path) -> dict[str, str]:
    root = root.resolve()  # `inside` compares resolved paths: a relative root ("package") must match too
    path = root / CHECKSUMS
    if not path.is_file():
        raise ModelError(f"package {root} has no {CHECKSUMS} file")
    listed: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel:
            raise ModelError(f"{CHECKSUMS}:{number}: expected '<sha256>  <path>'")
        inside(root, rel, f"{CHECKSUMS} entry")
        listed[rel] = digest.lower()
    return listed


def verify_checksums(root: Path) -> int:
    """Raise ModelError unless CHECKSUMS lists exactly the package's files with matching digests."""
    listed = read_checksums(root)
    present = package_files(root)
    extra = sorted(set(present) - set(listed))
    if extra:
        raise ModelError(f"file(s) not covered by {CHECKSUMS}: {', '.join(extra)}")
    for rel, digest in listed.items():
        path = root / rel
        if not path.is_file():
            raise ModelError(f"{CHECKSUMS} lists {rel}, which is missing")
        if file_sha256(path) != digest:
            raise ModelError(f"{rel} does not match its {CHECKSUMS} entry (corrupt or tampered package)")
    return len(listed)


def _decode(data: bytes, size: int, what: str, path: Path) -> bytes:
    if len(data) == size:
        return data
    text = data.decode("ascii", errors="replace").strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ModelError(f"{path} is not an {what} ({size} raw bytes or {2 * size} hex digits)")
    return raw


def load_trusted_key(path: str | Path) -> tuple[bytes | None, Any]:
    """(minisign key id, or None for a PEM/hex key; the ed25519 public key)."""
    ed25519 = _ed25519()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read trusted key {p}: {exc.strerror or exc}") from exc
    mini = minisign.parse_public_key(data.decode("ascii", errors="replace"))
    if mini is not None:
        return mini.key_id, ed25519.Ed25519PublicKey.from_public_bytes(mini.raw)
    return None, _pem_or_raw_public_key(p, data)


def load_public_key(path: str | Path) -> Any:
    """An ed25519 public key from a minisign public key, a PEM file or 32 bytes (raw or hex)."""
    return load_trusted_key(path)[1]


def _pem_or_raw_public_key(p: Path, data: bytes) -> Any:
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ModelError(f"{p} is not a valid PEM public key") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ModelError(f"{p} is not an ed25519 public key")
        return key
    return ed25519.Ed25519PublicKey.from_public_bytes(_decode(data, 32, "ed25519 public key", p))


def load_private_key(path: str | Path) -> Any:
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    data = p.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{p} is not an unencrypted PEM private key") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ModelError(f"{p} is not an ed25519 private key")
        return key
    return ed25519.Ed25519PrivateKey.from_private_bytes(_decode(data, 32, "ed25519 private key", p))


def generate_keypair(prefix: str | Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PEM private key, mode 0600) and ``PREFIX.pub`` (PEM public key)."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    private, public = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ModelError(
            f"cannot create {private}: {exc.strerror or exc} (keys are never overwritten)"
        ) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def sign_package(root: Path, private_key: str | Path) -> Path:
    """(Re)write CHECKSUMS and sign it in minisign format; return the ``CHECKSUMS.minisig`` path.

    The trusted comment names the package (what ``minisign -V`` shows a person checking it by hand).
    """
    from cryptography.hazmat.primitives import serialization

    key = load_private_key(private_key)
    manifest = read_manifest(root / MANIFEST)
    checksums = write_checksums(root)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    comment = (
        f"timestamp:{int(time.time())}\tfile:{CHECKSUMS}\tname:{manifest.name}\tversion:{manifest.version}"
    )
    text = minisign.sign(key, minisign.derived_key_id(raw), checksums.read_bytes(), comment)
    target = root / MINISIG
    target.write_text(text, encoding="ascii")
    (root / SIGNATURE).unlink(missing_ok=True)  # a stale older-format signature would only confuse
    return target


def signature_kind(root: Path) -> str | None:
    """``minisign``, ``legacy ed25519`` or None (unsigned), as the package's files say."""
    if (root / MINISIG).is_file():
        return "minisign"
    return "legacy ed25519" if (root / SIGNATURE).is_file() else None


def verify_signature(package_root: str | Path, trusted_keys: list[str] | list[Path]) -> str:
    """Refuse a package unless its CHECKSUMS hold and one trusted key signed them; return that key's path."""
    _ed25519()  # fail with the extra's name before anything else
    root = Path(package_root).resolve()
    if not trusted_keys:
        raise ModelError("signature required but no trusted key is configured")
    kind = signature_kind(root)
    if kind is None:
        raise ModelError(f"package {root.name} is not signed (no {MINISIG} file) and signatures are required")
    verify_checksums(root)
    if kind == "minisign":
        return _verify_minisign(root, trusted_keys)
    return _verify_legacy(root, trusted_keys)


def _verify_minisign(root: Path, trusted_keys: list[str] | list[Path]) -> str:
    sig = minisign.parse_signature((root / MINISIG).read_text(encoding="ascii", errors="replace"), MINISIG)
    data = (root / CHECKSUMS).read_bytes()
    for key_path in trusted_keys:
        key_id, key = load_trusted_key(key_path)
        if (key_id is None or key_id == sig.key_id) and minisign.verify(sig, data, key):
            _check_trusted_comment(root, sig.trusted_comment)
            return str(key_path)
    raise ModelError(
        f"package {root.name} is not signed by any trusted key (signed by key "
        f"{minisign.key_id_text(sig.key_id)}; {len(trusted_keys)} trusted key(s) configured)"
    )


def _check_trusted_comment(root: Path, comment: str) -> None:
    """The signer said which package they signed; it must be this one."""
    manifest = read_manifest(root / MANIFEST)
    fields = minisign.trusted_fields(comment)
    name, version = manifest.name, manifest.version
    if (fields.get("name"), fields.get("version")) != (name, version):
        raise ModelError(
            f"the signature's trusted comment {comment!r} does not name this package "
            f"({name} {version}): sign with -t 'name={name} version={version}'"
        )


def _verify_legacy(root: Path, trusted_keys: list[str] | list[Path]) -> str:
    sig_path = root / SIGNATURE
    signature = _decode(sig_path.read_bytes(), 64, "ed25519 signature", sig_path)
    message = (root / CHECKSUMS).read_bytes()
    from cryptography.exceptions import InvalidSignature

    for key_path in trusted_keys:
        try:
            load_trusted_key(key_path)[1].verify(signature, message)
        except InvalidSignature:
            continue
        log.warning("legacy_signature_format", package=root.name, resign="inspection-agent model sign")
        return str(key_path)
    raise ModelError(f"package {root.name} is not signed by any trusted key ({len(trusted_keys)} configured)")
