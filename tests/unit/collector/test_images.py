"""The JPEG check: a truncated image, a decompression bomb and a wrong size are quarantined cheaply."""

from __future__ import annotations

import struct
import time

import pytest

from agent.collector.messages import Rejected, check_jpeg
from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import jpeg, meta, v5


def _sof_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its SOF0 frame header claiming ``width`` x ``height``."""
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def bomb() -> bytes:
    """A few hundred bytes whose header claims 65000x65000 (4.2 gigapixels)."""
    small = jpeg(8, 8, quality=10)
    return _sof_size(small, 65000, 65000)


def _image(data: bytes, width: int, height: int) -> dict[str, int]:
    return {"width": width, "height": height, "bytes": len(data)}


def test_a_truncated_image_with_an_end_marker_appended_is_refused() -> None:
    full = jpeg(640, 480, seed=3)
    half = full[: len(full) // 2] + b"\xff\xd9"
    check_jpeg(full, _image(full, 640, 480), 40_000_000)
    with pytest.raises(Rejected, match="premature end"):
        check_jpeg(half, _image(half, 640, 480), 40_000_000)


def test_a_decompression_bomb_is_refused_from_its_header_alone() -> None:
    data = bomb()
    assert len(data) < 1000
    started = time.process_time()
    for _ in range(30):
        with pytest.raises(Rejected, match="max_pixels"):
            check_jpeg(data, _image(data, 65000, 65000), 40_000_000)
    assert time.process_time() - started < 1.0  # 30 of them once cost 48 s of CPU


def test_the_header_size_must_be_the_announced_size() -> None:
    data = jpeg(64, 48)
    with pytest.raises(Rejected, match="64x48 but the metadata says 64x56"):
        check_jpeg(data, _image(data, 64, 56), 40_000_000)


def test_a_bomb_announcing_a_smaller_size_is_refused(parts: Parts) -> None:
    data = bomb()
    doc = meta(jpeg(8, 8, quality=10))
    doc["image"] = {"width": 64, "height": 64, "bytes": len(data)}
    parts.ingest.process([v5(doc, data)])
    reason = parts.index.query("SELECT reason FROM quarantine")[0][0]
    assert "65000x65000 but the metadata says 64x64" in reason


def test_the_pixel_limit_is_configurable(parts: Parts) -> None:
    assert parts.cfg.limits.max_pixels == 40_000_000
    data = jpeg(64, 48)
    with pytest.raises(Rejected, match="max_pixels=3000"):
        check_jpeg(data, _image(data, 64, 48), 3000)


def test_a_truncated_sample_is_quarantined_not_stored(parts: Parts) -> None:
    full = jpeg(640, 480, seed=3)
    half = full[: len(full) // 2] + b"\xff\xd9"
    parts.ingest.process([v5(meta(half), half), v5(meta(full), full)])
    assert parts.index.query("SELECT count(*) FROM samples")[0][0] == 1
    assert "premature end" in parts.index.query("SELECT reason FROM quarantine")[0][0]
