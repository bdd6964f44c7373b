"""How a sample travels: the JPEG as the payload, its JSON metadata beside it, never base64.

MQTT 5: payload = JPEG bytes, ``content_type="image/jpeg"``, user property ``meta`` = the JSON.
MQTT 3.1.1 (no properties): payload = 4-byte big-endian length of the JSON, the JSON, the JPEG.
The collector accepts both (:func:`split_payload`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

CONTENT_TYPE = "image/jpeg"
META_PROPERTY = "meta"
_LENGTH = struct.Struct(">I")
_MIN_SIDE = 32
_MIN_QUALITY = 40


@dataclass(frozen=True, slots=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    quality: int


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


def fit_jpeg(image: np.ndarray, quality: int, max_side: int, budget: int) -> Jpeg | None:
    """Encode ``image`` no larger than ``max_side`` and ``budget`` bytes: lower the quality down to
    40 first, then the size; None when even a 32-pixel image does not fit."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = image if scale >= 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= budget:
            return Jpeg(np.asarray(buf).tobytes(), size[0], size[1], quality)
        if quality > _MIN_QUALITY:
            quality = max(_MIN_QUALITY, quality - 15)
        elif max(size) * 0.75 >= _MIN_SIDE:
            scale *= 0.75
        else:
            return None
