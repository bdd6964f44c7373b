"""scripts/make_demo_clip.py: clips readable by OpenCV, with one truth entry per frame."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from tests.support.paths import REPO

SCRIPT = REPO / "scripts" / "make_demo_clip.py"


def _load() -> ModuleType:
    """Load the script by path: scripts/ is not a package, and the agent's tests import it the same way."""
    spec = importlib.util.spec_from_file_location("make_demo_clip", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault("make_demo_clip", importlib.util.module_from_spec(spec))
    if not hasattr(module, "write_clip"):
        spec.loader.exec_module(module)
    return module


clip = _load()


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_mjpg_clip_has_every_frame_at_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "clip.avi"
    clip.write_clip(out, frames=12, width=160, height=120, fps=15, seed=1, codec="mjpg")
    frames = read_frames(out)
    assert len(frames) == 12
    assert all(f.shape == (120, 160, 3) for f in frames)


def test_truth_file_has_one_label_per_frame(tmp_path: Path) -> None:
    out = tmp_path / "clip.avi"
    doc = clip.write_clip(out, frames=20, width=64, height=48, seed=2, codec="mjpg", defect_rate=0.5)
    truth = json.loads((tmp_path / "clip.avi.truth.json").read_text())
    assert truth == json.loads(json.dumps(doc))
    assert len(truth["labels"]) == len(truth["truth"]) == 20
    assert [t["frame"] for t in truth["truth"]] == list(range(20))
    assert set(truth["labels"]) <= {"ok", "scratch", "spot", "crack", "hole"}
    assert truth["labels"] == [t["label"] for t in truth["truth"]]


def test_same_seed_same_clip_and_truth(tmp_path: Path) -> None:
    a = clip.write_clip(tmp_path / "a.avi", frames=8, width=64, height=48, seed=9, codec="mjpg")
    b = clip.write_clip(tmp_path / "b.avi", frames=8, width=64, height=48, seed=9, codec="mjpg")
    assert a["truth"] == b["truth"]
    assert (tmp_path / "a.avi").read_bytes() == (tmp_path / "b.avi").read_bytes()


def test_defect_rate_zero_and_one(tmp_path: Path) -> None:
    none = clip.write_clip(tmp_path / "a.avi", frames=15, width=64, height=48, codec="mjpg", defect_rate=0.0)
    every = clip.write_clip(tmp_path / "b.avi", frames=15, width=64, height=48, codec="mjpg", defect_rate=1.0)
    assert set(none["labels"]) == {"ok"}
    assert "ok" not in every["labels"]


def test_ambiguous_frames_are_faint_defects(tmp_path: Path) -> None:
    doc = clip.write_clip(
        tmp_path / "c.avi", frames=60, width=64, height=48, codec="mjpg", defect_rate=0.4, ambiguous_rate=0.2
    )
    ambiguous = [t for t in doc["truth"] if t["ambiguous"]]
    assert 3 <= len(ambiguous) <= 25
    assert all(t["label"] != "ok" and 0 < t["severity"] < 0.5 for t in ambiguous)


def test_darken_lowers_brightness(tmp_path: Path) -> None:
    clip.write_clip(tmp_path / "a.avi", frames=4, width=96, height=64, seed=3, codec="mjpg")
    clip.write_clip(tmp_path / "b.avi", frames=4, width=96, height=64, seed=3, codec="mjpg", darken=0.5)
    bright = np.mean([f.mean() for f in read_frames(tmp_path / "a.avi")])
    dark = np.mean([f.mean() for f in read_frames(tmp_path / "b.avi")])
    assert dark == pytest.approx(bright * 0.5, rel=0.1)


@pytest.mark.parametrize(
    "options",
    [
        {"codec": "vp9"},
        {"ambiguous_rate": 0.5, "defect_rate": 0.3},
        {"darken": 1.0},
        {"blur": 4},
        {"codec": "h264", "width": 65},
    ],
)
def test_bad_options_are_refused_before_writing(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        clip.write_clip(tmp_path / "x.avi", frames=2, **{"width": 64, "height": 48, **options})
    assert not (tmp_path / "x.avi").exists()


def test_command_line_writes_clip_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "cli.avi"
    argv = ["--out", str(out), "--frames", "5", "--width", "64", "--height", "48", "--codec", "mjpg"]
    assert clip.main([*argv, "--blur", "3", "--darken", "0.2"]) == 0
    assert len(read_frames(out)) == 5
    assert json.loads((tmp_path / "cli.avi.truth.json").read_text())["blur"] == 3


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (Debian package) not installed")
def test_h264_clip_through_ffmpeg_is_readable(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    doc = clip.write_clip(out, frames=10, width=160, height=120, fps=30, seed=4, codec="h264")
    frames = read_frames(out)
    assert len(frames) == 10 == len(doc["labels"])
    assert frames[0].shape == (120, 160, 3)
