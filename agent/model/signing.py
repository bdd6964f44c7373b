"""Package integrity and authenticity: ``CHECKSUMS`` over every file, an ed25519 ``signature`` over it.

``CHECKSUMS`` holds ``<sha256>  <relative path>`` lines sorted by path (``sha256sum -c``
reads it). Verification insists the listing is exact: every listed file present and
matching, and no unlisted file in the package, so nothing can be slipped in beside a
signed model. ``signature`` is the 64-byte ed25519 signature, raw or hex. Public keys
are PEM or 32-byte hex; ``cryptography`` (the ``sign`` extra) is imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent.errors import ModelError, RuntimeMissingError
from agent.model.package import file_sha256, inside

CHECKSUMS = "CHECKSUMS"
SIGNATURE = "signature"
_UNLISTED = {CHECKSUMS, SIGNATURE}


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


def load_public_key(path: str | Path) -> Any:
    """An ed25519 public key from a PEM file or 32 bytes (raw or hex)."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read trusted key {p}: {exc.strerror or exc}") from exc
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
    """(Re)write CHECKSUMS and sign it; return the ``signature`` path."""
    key = load_private_key(private_key)
    checksums = write_checksums(root)
    target = root / SIGNATURE
    target.write_text(key.sign(checksums.read_bytes()).hex() + "\n", encoding="ascii")
    return target


def verify_signature(package_root: str | Path, trusted_keys: list[str] | list[Path]) -> str:
    """Refuse a package unless its CHECKSUMS hold and one trusted key signed them; return that key's path."""
    _ed25519()  # fail with the extra's name before anything else
    root = Path(package_root).resolve()
    if not trusted_keys:
        raise ModelError("signature required but no trusted key is configured")
    sig_path = root / SIGNATURE
    if not sig_path.is_file():
        raise ModelError(
            f"package {root.name} is not signed (no {SIGNATURE} file) and signatures are required"
        )
    verify_checksums(root)
    signature = _decode(sig_path.read_bytes(), 64, "ed25519 signature", sig_path)
    message = (root / CHECKSUMS).read_bytes()
    from cryptography.exceptions import InvalidSignature

    for key_path in trusted_keys:
        try:
            load_public_key(key_path).verify(signature, message)
        except InvalidSignature:
            continue
        return str(key_path)
    raise ModelError(f"package {root.name} is not signed by any trusted key ({len(trusted_keys)} configured)")
