"""Checks on an uploaded image before anything decodes it (``POST /api/classify``).

Only PNG and JPEG are accepted, recognised by their signature; their width and height are read
from the header (PNG's IHDR, JPEG's SOF marker) and an image whose pixel count exceeds the limit
is refused before OpenCV allocates anything: a 60 kB PNG that inflates to gigabytes (a
decompression bomb) never reaches the decoder.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from agent.errors import AgentError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class UploadError(AgentError):
    """The uploaded body is not an image we accept; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; UploadError(415) when it is neither PNG nor JPEG."""
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise UploadError(415, "a truncated PNG (no IHDR header)")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(JPEG_SIGNATURE):
        width, height = _jpeg_size(data)
        return "jpeg", width, height
    raise UploadError(415, "the body is not a PNG or JPEG image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers to the first start-of-frame segment."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise UploadError(415, "a malformed JPEG (bad marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise UploadError(415, "a truncated JPEG (no frame header)")


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The image as BGR uint8 (what a camera frame is), after the header checks above."""
    kind, width, height = image_size(data)
    if width == 0 or height == 0:
        raise UploadError(415, f"the {kind.upper()} header says {width}x{height}")
    if width * height > max_pixels:
        raise UploadError(
            413, f"the image is {width}x{height} ({width * height} pixels), more than {max_pixels}; refused"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UploadError(415, f"the {kind.upper()} could not be decoded (corrupt data)")
    return image
