"""How a sample travels: the JPEG as the payload, its JSON metadata beside it, never base64.

MQTT 5: payload = JPEG bytes, ``content_type="image/jpeg"``, user property ``meta`` = the JSON.
MQTT 3.1.1 (no properties): payload = 4-byte big-endian length of the JSON, the JSON, the JPEG.
The collector accepts both (:func:`split_payload`). This module is the contract both sides
share; how the sampler makes the JPEG is its own business (agent/sampling/jpeg.py).
"""

from __future__ import annotations

import struct

CONTENT_TYPE = "image/jpeg"
META_PROPERTY = "meta"
_LENGTH = struct.Struct(">I")


def frame(meta: bytes, jpeg: bytes) -> bytes:
    """The MQTT 3.1.1 framing: length of ``meta`` (uint32 BE) + meta + JPEG."""
    return _LENGTH.pack(len(meta)) + meta + jpeg


def unframe(payload: bytes) -> tuple[bytes, bytes]:
    """(meta, jpeg) from a framed payload; ValueError when the framing is inconsistent."""
    if len(payload) < _LENGTH.size:
        raise ValueError("payload shorter than the 4-byte metadata length")
    (size,) = _LENGTH.unpack_from(payload)
    end = _LENGTH.size + size
    if size == 0 or end >= len(payload):
        raise ValueError(f"metadata length {size} does not fit a {len(payload)}-byte payload")
    return payload[_LENGTH.size : end], payload[end:]


def split_payload(payload: bytes, content_type: str | None, meta: str | None) -> tuple[bytes, bytes]:
    """(meta JSON, JPEG) from either wire form; ValueError when it is neither."""
    if meta is not None:
        if content_type not in (None, CONTENT_TYPE):
            raise ValueError(f"content type {content_type!r} is not {CONTENT_TYPE}")
        return meta.encode("utf-8"), payload
    return unframe(payload)
