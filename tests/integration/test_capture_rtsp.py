"""A real GStreamer RTSP camera that goes away and comes back, read through ResilientSource."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.capture import ResilientSource, open_source
from agent.capture.base import Frame
from agent.config.schema import CameraConfig
from tests.support.rtsp import RtspServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Reader(threading.Thread):
    """Reads frames until the source returns None, keeping whatever was raised."""

    def __init__(self, source: ResilientSource) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.frames: list[Frame] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while (frame := self.source.read()) is not None:
                self.frames.append(frame)
        except BaseException as exc:
            self.error = exc


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def test_rtsp_camera_outage_goes_offline_then_online_and_frames_resume(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    cam = CameraConfig(
        source=rtsp_server.url, reconnect_initial_s=0.2, reconnect_max_s=1.0, read_timeout_s=3.0
    )
    states: list[str] = []
    source = ResilientSource(lambda: open_source(cam, tmp_path), cam, states.append)
    source.open()
    reader = Reader(source)
    reader.start()
    try:
        wait_for(lambda: len(reader.frames) >= 5, 15, "first frames")
        assert states == ["online"]
        assert reader.frames[0].image.shape == (240, 320, 3)

        rtsp_server.stop()
        wait_for(lambda: "offline" in states, 10, "offline")
        before = len(reader.frames)

        rtsp_server.start()
        wait_for(lambda: states[-1] == "online" and len(reader.frames) >= before + 5, 15, "frames to resume")
    finally:
        source.stop()
        reader.join(timeout=10)
        source.close()

    assert reader.error is None
    assert not reader.is_alive()
    assert states == ["online", "offline", "online"]
    assert source.reconnects >= 1
    seqs = [f.seq for f in reader.frames]
    assert seqs == list(range(len(seqs)))
    assert all(b.mono >= a.mono for a, b in zip(reader.frames, reader.frames[1:], strict=False))
