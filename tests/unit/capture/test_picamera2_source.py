"""picamera2 cameras: the install hint, and the adapter driven through a small stand-in module.

A Raspberry Pi camera cannot exist on a CI machine, so the adapter's calls are
checked against a tiny fake ``picamera2`` module placed in ``sys.modules`` here only.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.capture import open_source
from agent.capture.picamera2_source import INSTALL_HINT
from agent.config.schema import Picamera2Config
from agent.errors import CameraError
from tests.unit.capture.helpers import camera


class FakePicamera2:
    """Just the calls the adapter makes; ``capture_array`` returns B,G,R = 1,2,3 like RGB888."""

    opened: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num != 0:
            raise IndexError("list index out of range")
        self.config: dict[str, Any] = {}
        self.running = False
        self.closed = False
        self.fail_capture = False
        FakePicamera2.opened.append(self)

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        return {"main": main, "controls": controls}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.running = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        if self.fail_capture:
            raise RuntimeError("camera frontend has timed out!")
        width, height = self.config["main"]["size"]
        channels = 4 if self.config["main"]["format"].startswith("X") else 3
        return np.tile(np.arange(1, channels + 1, dtype=np.uint8), (height, width, 1))

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.opened = []
    yield FakePicamera2


def test_missing_picamera2_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail as if not installed
    with pytest.raises(CameraError) as info:
        open_source(camera("picamera2:0"), Path("."))
    assert str(info.value) == INSTALL_HINT
    assert "sudo apt install python3-picamera2" in str(info.value)
    assert "--system-site-packages" in str(info.value)


def test_configures_size_format_rate_exposure_and_gain(fake_picamera2: type[FakePicamera2]) -> None:
    settings = Picamera2Config(width=320, height=240, exposure_us=8000, analogue_gain=2.0)
    source = open_source(camera("picamera2:0", fps=25.0, picamera2=settings), Path("."))
    source.open()
    cam = fake_picamera2.opened[-1]
    assert cam.running
    assert cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["controls"] == {
        "FrameDurationLimits": (40000, 40000),
        "ExposureTime": 8000,
        "AnalogueGain": 2.0,
    }
    frames = [source.read(), source.read()]
    assert [f.seq for f in frames] == [0, 1]
    assert frames[0].image.shape == (240, 320, 3)
    assert frames[0].image[0, 0].tolist() == [1, 2, 3]  # RGB888 is already B,G,R: no conversion
    assert source.live is True
    source.close()
    assert cam.closed and not cam.running


def test_xbgr_frames_are_converted_to_bgr(fake_picamera2: type[FakePicamera2]) -> None:
    settings = Picamera2Config(width=32, height=24, format="XBGR8888")
    source = open_source(camera("picamera2:0", picamera2=settings), Path("."))
    source.open()
    frame = source.read()
    assert frame.image.shape == (24, 32, 3)
    assert frame.image[0, 0].tolist() == [3, 2, 1]  # R,G,B,X in memory -> B,G,R


def test_absent_camera_fails_at_open(fake_picamera2: type[FakePicamera2]) -> None:
    source = open_source(camera("picamera2:1"), Path("."))
    with pytest.raises(CameraError, match=r"picamera2:1: cannot open the camera: list index out of range"):
        source.open()


def test_capture_failure_is_a_camera_error(fake_picamera2: type[FakePicamera2]) -> None:
    source = open_source(camera("picamera2:0", picamera2=Picamera2Config(width=32, height=24)), Path("."))
    source.open()
    fake_picamera2.opened[-1].fail_capture = True
    with pytest.raises(CameraError, match="capture failed: camera frontend has timed out!"):
        source.read()


def test_unknown_format_and_bad_index_are_refused_when_built(fake_picamera2: type[FakePicamera2]) -> None:
    with pytest.raises(CameraError, match="format 'NV12' is not supported"):
        open_source(camera("picamera2:0", picamera2=Picamera2Config(format="NV12")), Path("."))
    with pytest.raises(CameraError, match="camera number must be an integer"):
        open_source(camera("picamera2:front"), Path("."))
