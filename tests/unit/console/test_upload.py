"""Uploaded images are checked from their header before anything decodes them."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from agent.console.upload import UploadError, decode_upload, image_size
from tests.support.paths import DEMO_MODEL


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A valid PNG of side x side black gray pixels: a few hundred kB that inflate to side² bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\0" * (side + 1)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_the_size_of_a_png_and_a_jpeg_comes_from_the_header() -> None:
    png = (DEMO_MODEL / "golden" / "ok_0.png").read_bytes()
    assert image_size(png)[0] == "png"
    _, jpg = cv2.imencode(".jpg", np.zeros((37, 53, 3), np.uint8))
    assert image_size(bytes(jpg)) == ("jpeg", 53, 37)


@pytest.mark.parametrize(
    "body", [b"", b"hello", b"GIF89a....", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00"]
)
def test_a_body_that_is_not_a_png_or_jpeg_is_refused_with_415(body: bytes) -> None:
    with pytest.raises(UploadError) as err:
        decode_upload(body, 10_000_000)
    assert err.value.status == 415
    assert "\n" not in str(err.value)


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding() -> None:
    bomb = png_bomb(8000)  # 64 megapixels in about 70 kB
    assert len(bomb) < 200_000
    with pytest.raises(UploadError, match="8000x8000") as err:
        decode_upload(bomb, 40_000_000)
    assert err.value.status == 413


def test_a_jpeg_claiming_a_huge_frame_is_refused_before_decoding() -> None:
    _, jpg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(jpg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    with pytest.raises(UploadError) as err:
        decode_upload(bytes(data), 40_000_000)
    assert err.value.status == 413


def test_a_corrupt_png_with_a_sane_header_is_refused_without_a_crash() -> None:
    png = (DEMO_MODEL / "golden" / "ok_0.png").read_bytes()
    with pytest.raises(UploadError, match="could not be decoded"):
        decode_upload(png[:40] + b"\0" * 100, 40_000_000)


def test_a_good_image_decodes_to_bgr_like_a_camera_frame() -> None:
    png = (DEMO_MODEL / "golden" / "ok_0.png").read_bytes()
    image = decode_upload(png, 40_000_000)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
