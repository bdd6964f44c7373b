"""An image's width and height from its header, before anything is decoded.

A replay folder may hold anything: a 0-byte file, a text file named ``.jpg``, or a
20000x20000 PNG of a few kilobytes that OpenCV would decode into 1.2 GB. Reading the
header first (PNG IHDR, JPEG SOFn, BMP, TIFF, WebP, PGM/PPM: the formats a replay
accepts) bounds the decoder's memory before it runs, and turns "not an image" into a
clear reason. Only the first :data:`HEAD_BYTES` of a file are read (a JPEG's SOF
usually sits in the first kilobytes, after its EXIF block).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from agent.errors import CameraError

HEAD_BYTES = 256 * 1024
Size = tuple[int, int]


def image_size(path: Path) -> Size:
    """``(width, height)`` from the header; CameraError when it is not an image of a known format."""
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise CameraError(f"cannot read it: {exc.strerror or exc}") from exc
    if not head:
        raise CameraError("empty file")
    for magic, parse in _PARSERS:
        if head.startswith(magic):
            try:
                width, height = parse(head)
            except (struct.error, ValueError, IndexError) as exc:
                raise CameraError(f"truncated or malformed header ({exc})") from exc
            if width <= 0 or height <= 0:
                raise CameraError(f"header says {width}x{height}")
            return width, height
    raise CameraError("not an image (unknown header)")


def png_size(head: bytes) -> Size:
    """A PNG's size from its IHDR chunk; ValueError/struct.error when the header is not whole."""
    if head[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(head: bytes) -> Size:
    """Walk the markers to the first SOFn (start of frame), which carries the size.

    Shared with the console's upload check; ValueError/struct.error when the header is not whole.
    """
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker in (0xD9, 0xDA) or length < 2:
            break  # end of image or scan data before any frame header
        pos += 2 + length
    raise ValueError("no frame header (SOF) found")


def _bmp(head: bytes) -> Size:
    (header_size,) = struct.unpack("<I", head[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", head[18:22])
        return int(width), int(height)
    width, height = struct.unpack("<ii", head[18:26])
    return int(width), abs(int(height))  # a negative height is a top-down bitmap


def _tiff(head: bytes) -> Size:
    """The first image file directory's ImageWidth (256) and ImageLength (257) tags."""
    order = "<" if head[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", head[4:8])
    (count,) = struct.unpack(order + "H", head[ifd : ifd + 2])
    tags: dict[int, int] = {}
    for i in range(count):
        entry = head[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            fmt = order + ("H" if kind == 3 else "I")
            tags[tag] = int(struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0])
    return tags[256], tags[257]


def _webp(head: bytes) -> Size:
    if head[8:12] != b"WEBP":
        raise ValueError("RIFF but not WEBP")
    kind = head[12:16]
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise ValueError(f"unknown WebP chunk {kind!r}")


def _netpbm(head: bytes) -> Size:
    """P1-P6: magic, then width and height as ASCII numbers, with # comments allowed."""
    fields: list[int] = []
    for line in head[2:].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            fields.append(int(token))
            if len(fields) == 2:
                return fields[0], fields[1]
    raise ValueError("no width and height")


_PARSERS: tuple[tuple[bytes, Callable[[bytes], Size]], ...] = (
    (b"\x89PNG\r\n\x1a\n", png_size),
    (b"\xff\xd8", jpeg_size),
    (b"BM", _bmp),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
    (b"RIFF", _webp),
    *((f"P{n}".encode(), _netpbm) for n in range(1, 7)),
)
