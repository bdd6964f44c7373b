"""The synthetic conveyor: deterministic parts from the shared renderer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.capture import open_source
from agent.errors import CameraError
from agent.synthetic.parts import LABELS
from tests.unit.capture.helpers import camera


def frames(source_text: str, n: int, **overrides: object) -> list:  # type: ignore[type-arg]
    source = open_source(camera(source_text, realtime=False, width=96, height=64, **overrides), Path("."))
    source.open()
    out = [source.read() for _ in range(n)]
    source.close()
    return out


def test_same_seed_gives_the_same_parts() -> None:
    a, b = frames("synthetic:7", 6), frames("synthetic:7", 6)
    assert [f.ref for f in a] == [f.ref for f in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_other_seed_gives_other_parts() -> None:
    a, b = frames("synthetic:1", 3), frames("synthetic:2", 3)
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_frames_have_the_configured_size_and_true_label_as_ref() -> None:
    out = frames("synthetic:", 5)
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 for f in out)
    assert all(f.ref in LABELS for f in out)
    assert [f.seq for f in out] == list(range(5))


def test_defect_rate_is_honoured() -> None:
    assert {f.ref for f in frames("synthetic:3", 20, synthetic_defect_rate=0.0)} == {"ok"}
    assert "ok" not in {f.ref for f in frames("synthetic:3", 20, synthetic_defect_rate=1.0)}
    share = sum(f.ref != "ok" for f in frames("synthetic:3", 200, synthetic_defect_rate=0.3)) / 200
    assert 0.15 < share < 0.45


def test_default_size_is_640_by_480_and_live() -> None:
    source = open_source(camera("synthetic:", realtime=False), Path("."))
    source.open()
    frame = source.read()
    assert frame is not None and frame.image.shape == (480, 640, 3)
    assert source.live is True


def test_realtime_synthetic_is_paced_at_camera_fps() -> None:
    source = open_source(camera("synthetic:", fps=20.0, width=64, height=48), Path("."))
    source.open()
    started = time.monotonic()
    for _ in range(6):
        source.read()
    assert 0.15 < time.monotonic() - started < 3.0  # five periods of 50 ms


def test_bad_seed_and_tiny_size_are_refused_when_built() -> None:
    with pytest.raises(CameraError, match="seed must be an integer"):
        open_source(camera("synthetic:abc"), Path("."))
    with pytest.raises(CameraError, match="too small"):
        open_source(camera("synthetic:", width=8, height=8), Path("."))


def test_config_refuses_a_defect_rate_outside_0_to_1(tmp_path: Path) -> None:
    from agent.config import load_config
    from agent.errors import ConfigError

    path = tmp_path / "agent.yaml"
    path.write_text(
        "device: {id: d1, site: s, line: l}\n"
        "camera: {source: 'synthetic:3', synthetic_defect_rate: 1.5}\n"
        "model: {path: m}\n"
    )
    with pytest.raises(
        ConfigError, match=r"agent\.yaml:2: camera\.synthetic_defect_rate: must be between 0 and 1"
    ):
        load_config(path)
