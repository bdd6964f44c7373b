"""The minisign file formats (https://jedisct1.github.io/minisign/), read and written in-process.

A public key is ``untrusted comment: …`` then base64 of ``"Ed" || key id (8) || ed25519 key (32)``.
A signature file is four lines: an untrusted comment, base64 of ``alg (2) || key id (8) ||
signature (64)``, ``trusted comment: …``, and base64 of the *global* signature over
``signature || trusted comment``, so the trusted comment cannot be changed either. ``alg``
``ED`` signs the BLAKE2b-512 hash of the file (minisign's default); legacy ``Ed`` signs the
file itself. Teams sign with the ``minisign`` tool they already use; the agent verifies with
``cryptography``'s Ed25519 and :mod:`hashlib`, no minisign binary on the device.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from agent.errors import ModelError

_PUBLIC_ALG = b"Ed"
_PREHASHED, _LEGACY = b"ED", b"Ed"
_TRUSTED = "trusted comment: "


@dataclass(frozen=True, slots=True)
class PublicKey:
    key_id: bytes  # 8 bytes, as stored (minisign prints them reversed, in hex)
    raw: bytes  # the 32-byte ed25519 key


@dataclass(frozen=True, slots=True)
class Signature:
    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes


def key_id_text(key_id: bytes) -> str:
    """The key id as ``minisign`` shows it (the little-endian number in upper-case hex)."""
    return key_id[::-1].hex().upper()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ModelError(f"{what} is not valid base64") from exc


def _lines(text: str) -> list[str]:
    return [ln.rstrip("\r") for ln in text.splitlines() if ln.strip()]


def parse_public_key(text: str) -> PublicKey | None:
    """A minisign public key (file text, or the bare base64 line); None when ``text`` is not one."""
    lines = [ln for ln in _lines(text) if not ln.startswith("untrusted comment:")]
    if len(lines) != 1 or not re.fullmatch(r"[A-Za-z0-9+/=]{56}", lines[0].strip()):
        return None
    data = _b64(lines[0], "minisign public key")
    if len(data) != 42 or data[:2] != _PUBLIC_ALG:
        return None
    return PublicKey(data[2:10], data[10:])


def public_key_text(key: PublicKey) -> str:
    line = base64.b64encode(_PUBLIC_ALG + key.key_id + key.raw).decode()
    return f"untrusted comment: minisign public key {key_id_text(key.key_id)}\n{line}\n"


def parse_signature(text: str, where: str) -> Signature:
    lines = _lines(text)
    if len(lines) != 4 or not lines[0].startswith("untrusted comment:") or not lines[2].startswith(_TRUSTED):
        raise ModelError(
            f"{where} is not a minisign signature (untrusted comment, signature, trusted comment, "
            "global signature)"
        )
    data = _b64(lines[1], where)
    if len(data) != 74 or data[:2] not in (_PREHASHED, _LEGACY):
        raise ModelError(f"{where}: unknown minisign signature algorithm or size")
    glob = _b64(lines[3], where)
    if len(glob) != 64:
        raise ModelError(f"{where}: the global signature is not 64 bytes")
    return Signature(data[:2], data[2:10], data[10:], lines[2][len(_TRUSTED) :], glob)


def _message(algorithm: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=64).digest() if algorithm == _PREHASHED else data


def verify(sig: Signature, data: bytes, public_key: Any) -> bool:
    """Both signatures hold: over ``data`` (hashed for ``ED``) and over signature + trusted comment."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(sig.signature, _message(sig.algorithm, data))
        public_key.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
    except InvalidSignature:
        return False
    return True


def sign(private_key: Any, key_id: bytes, data: bytes, trusted_comment: str) -> str:
    """A prehashed (``ED``) signature file, as ``minisign -S -t COMMENT`` writes it."""
    if "\n" in trusted_comment or "\r" in trusted_comment:
        raise ModelError("a trusted comment is one line")
    signature = private_key.sign(_message(_PREHASHED, data))
    glob = private_key.sign(signature + trusted_comment.encode())
    line = base64.b64encode(_PREHASHED + key_id + signature).decode()
    return (
        f"untrusted comment: signature from inspection-agent key {key_id_text(key_id)}\n{line}\n"
        f"{_TRUSTED}{trusted_comment}\n{base64.b64encode(glob).decode()}\n"
    )


def trusted_fields(comment: str) -> dict[str, str]:
    """``key:value`` or ``key=value`` words of a trusted comment (minisign's own are tab-separated)."""
    fields: dict[str, str] = {}
    for word in comment.split():
        key, sep, value = word.partition("=") if "=" in word else word.partition(":")
        if sep:
            fields[key.lower()] = value
    return fields


def derived_key_id(raw_public: bytes) -> bytes:
    """A stable key id for a key made by ``model keygen`` (minisign's own keys carry a random one)."""
    return hashlib.blake2b(raw_public, digest_size=8).digest()
