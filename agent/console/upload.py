"""Checks on an uploaded image before anything decodes it (``POST /api/classify``).

Only PNG and JPEG are accepted, recognised by their signature; their width and height are read
from the header (PNG's IHDR, JPEG's SOF marker) and an image whose pixel count exceeds the limit
is refused before OpenCV allocates anything: a 60 kB PNG that inflates to gigabytes (a
decompression bomb) never reaches the decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import cv2
import numpy as np

from agent.capture.imagesize import Size, jpeg_size, png_size
from agent.errors import AgentError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
_FORMATS: tuple[tuple[str, bytes, Callable[[bytes], Size]], ...] = (
    ("png", PNG_SIGNATURE, png_size),
    ("jpeg", JPEG_SIGNATURE, jpeg_size),
)


class UploadError(AgentError):
    """The uploaded body is not an image we accept; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; UploadError(415) when it is neither PNG nor JPEG.

    The header walk is the replay folder's (``agent.capture.imagesize``); only the formats and
    the HTTP answer are the console's own.
    """
    for kind, signature, parse in _FORMATS:
        if data.startswith(signature):
            try:
                width, height = parse(data)
            except (struct.error, ValueError, IndexError) as exc:
                raise UploadError(415, f"a truncated or malformed {kind.upper()} ({exc})") from exc
            return kind, width, height
    raise UploadError(415, "the body is not a PNG or JPEG image")


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
