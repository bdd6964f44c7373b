"""``open_source`` picks one backend per source string and resolves relative paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent.capture import open_source
from agent.capture.opencv_source import OpenCVSource
from agent.capture.replay import ImageReplay, VideoReplay
from agent.capture.synthetic import SyntheticSource
from agent.errors import CameraError
from tests.unit.capture.helpers import camera, write_images, write_video


@pytest.mark.parametrize(
    ("source", "backend"),
    [
        ("video:clip.avi", VideoReplay),
        ("dir:frames", ImageReplay),
        ("glob:frames/*.png", ImageReplay),
        ("synthetic:", SyntheticSource),
        ("synthetic:42", SyntheticSource),
        ("v4l2:/dev/video0", OpenCVSource),
        ("v4l2:0", OpenCVSource),
        ("rtsp://127.0.0.1:8554/cam", OpenCVSource),
        ("http://127.0.0.1:8080/video.mjpg", OpenCVSource),
    ],
)
def test_source_string_selects_the_backend(source: str, backend: type) -> None:
    assert isinstance(open_source(camera(source), Path(".")), backend)


def test_picamera2_source_string_reaches_the_picamera2_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="picamera2 is not installed"):
        open_source(camera("picamera2:0"), Path("."))


def test_relative_paths_are_relative_to_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "a.avi", [40])
    write_images(tmp_path / "frames", [40])
    for text in ("video:clips/a.avi", "dir:frames", "glob:frames/*.png"):
        source = open_source(camera(text, realtime=False), tmp_path)
        source.open()
        assert source.read() is not None, text
        source.close()


def test_a_replay_can_be_marked_live_to_simulate_a_camera(tmp_path: Path) -> None:
    write_images(tmp_path / "frames", [40])
    assert open_source(camera("dir:frames", live=True), tmp_path).live is True
    assert open_source(camera("dir:frames"), tmp_path).live is False
    assert open_source(camera("synthetic:", live=False), tmp_path).live is False
