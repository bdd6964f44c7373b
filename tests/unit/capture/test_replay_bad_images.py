"""Issue 12 cases 9 and 10: an unreadable or huge image in a dir:/glob: replay is skipped,
counted and reported; it never stops the camera, and a huge one is never decoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture import open_source
from agent.capture.common import SkippedImages
from agent.capture.imagesize import image_size
from agent.errors import CameraError
from tests.unit.capture.helpers import camera, gray, mean, write_images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (a valid IHDR, a tiny IDAT): a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_unreadable_images_are_skipped_counted_and_reported_and_the_loop_goes_on(tmp_path: Path) -> None:
    write_images(tmp_path, [10, 200])  # img_000.png, img_001.png
    (tmp_path / "img_000a.png").write_bytes(b"")  # a 0-byte png
    (tmp_path / "img_000b.jpg").write_text("not an image at all")  # a text file named .jpg
    notes: list[tuple[str, str, int]] = []
    skips = SkippedImages(lambda _source, file, reason, count: notes.append((file, reason, count)))
    source = open_source(camera(f"dir:{tmp_path}", realtime=False, loop=True), tmp_path, skips)
    source.open()
    frames = [source.read() for _ in range(6)]
    source.close()
    assert [round(mean(f.image), -1) for f in frames if f] == [10, 200] * 3
    assert skips.count == 6  # two bad files, three passes
    assert [n[0] for n in notes] == ["img_000a.png", "img_000b.jpg"]  # reported once per file, counted always
    assert skips.summary()["count"] == 6 and skips.summary()["last"]["file"] == "img_000b.jpg"


def test_a_folder_with_no_readable_image_fails_instead_of_spinning(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("text")
    source = open_source(camera(f"dir:{tmp_path}", realtime=False, loop=True), tmp_path, SkippedImages())
    source.open()
    with pytest.raises(CameraError, match="no readable image"):
        source.read()


def test_a_huge_image_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    (tmp_path / "000.png").write_bytes(_png_header(20000, 20000))
    write_images(tmp_path / "ok", [90])
    (tmp_path / "ok" / "img_000.png").rename(tmp_path / "001.png")
    skips = SkippedImages()
    source = open_source(
        camera(f"dir:{tmp_path}", realtime=False, max_image_pixels=10_000_000), tmp_path, skips
    )
    source.open()
    frame = source.read()
    assert frame is not None and round(mean(frame.image), -1) == 90
    assert source.read() is None
    assert skips.count == 1 and "20000x20000" in skips.summary()["last"]["reason"]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm", ".ppm"])
def test_header_sizes_match_what_opencv_decodes(tmp_path: Path, suffix: str) -> None:
    image = gray(77, width=123, height=45)
    if suffix == ".pgm":
        image = image[:, :, 0]
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image)
    assert image_size(path) == (123, 45)


def test_truncated_or_garbage_headers_are_unreadable(tmp_path: Path) -> None:
    for name, data in [
        ("a.png", b""),
        ("b.png", b"\x89PNG\r\n\x1a\n"),
        ("c.jpg", b"\xff\xd8\xff"),
        ("d.jpg", b"hello"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CameraError):
            image_size(tmp_path / name)
    assert np.zeros(1).size == 1
