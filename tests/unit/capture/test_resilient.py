"""Reconnection with backoff, driven by a scripted stand-in for a failing camera."""

from __future__ import annotations

import random
import threading
import time
from collections import deque

import numpy as np
import pytest

from agent.capture.base import Frame
from agent.capture.resilient import Backoff, ResilientSource
from agent.errors import CameraError
from tests.unit.capture.helpers import camera

FAST = {"reconnect_initial_s": 0.01, "reconnect_max_s": 0.04}


class ScriptedCamera:
    """A test double for a flaky camera: each open()/read() consumes the next step of a shared script.

    Steps: ``open`` (opens), ``refuse`` (open fails), ``frame`` (a frame), ``lost`` (read fails),
    ``end`` (read returns None). An exhausted script keeps delivering frames.
    """

    def __init__(self, script: deque[str], built: list[ScriptedCamera]) -> None:
        self.script = script
        self.live = True
        self.description = "scripted"
        self.seq = 0
        self.closed = False
        built.append(self)

    def open(self) -> None:
        if self.script and self.script.popleft() == "refuse":
            raise CameraError("scripted: refused")

    def read(self) -> Frame | None:
        step = self.script.popleft() if self.script else "frame"
        if step == "lost":
            raise CameraError("scripted: lost")
        if step == "end":
            return None
        self.seq += 1
        return Frame(np.zeros((2, 2, 3), np.uint8), self.seq - 1, 0, time.monotonic())

    def close(self) -> None:
        self.closed = True


def resilient(
    script: list[str], source: str = "rtsp://cam/x", **cfg: float
) -> tuple[ResilientSource, list[str], list]:  # type: ignore[type-arg]
    steps, built, states = deque(script), [], []
    src = ResilientSource(lambda: ScriptedCamera(steps, built), camera(source, **cfg), states.append)
    return src, states, built


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_backoff_jitter_only_shortens_and_is_seedable() -> None:
    a = Backoff(1.0, 8.0, jitter=0.2, rng=random.Random(5))
    b = Backoff(1.0, 8.0, jitter=0.2, rng=random.Random(5))
    delays = [a.next() for _ in range(5)]
    assert delays == [b.next() for _ in range(5)]
    for delay, base in zip(delays, [1.0, 2.0, 4.0, 8.0, 8.0], strict=True):
        assert 0.8 * base <= delay <= base


def test_lost_camera_goes_offline_reconnects_and_keeps_numbering() -> None:
    src, states, built = resilient(
        ["open", "frame", "frame", "lost", "refuse", "refuse", "open", "frame"], **FAST
    )
    src.open()
    frames = [src.read() for _ in range(4)]
    assert [f.seq for f in frames if f] == [0, 1, 2, 3]
    assert states == ["online", "offline", "online"]
    assert src.reconnects == 1
    assert len(built) == 4  # the first camera, two refused attempts, the one that came back
    assert all(cam.closed for cam in built[:-1])


def test_camera_off_at_start_is_waited_for() -> None:
    src, states, _ = resilient(["refuse", "refuse", "open"], **FAST)
    src.open()  # does not raise for a live source
    assert states == ["offline"]
    assert src.read() is not None
    assert states == ["offline", "online"]


def test_live_stream_that_ends_is_reopened() -> None:
    src, states, _ = resilient(["open", "frame", "end", "open"], **FAST)
    src.open()
    assert [src.read().seq, src.read().seq] == [0, 1]  # type: ignore[union-attr]
    assert states == ["online", "offline", "online"]


def test_stop_unblocks_a_read_waiting_in_backoff_promptly() -> None:
    src, _, _ = resilient(["refuse"] * 100, reconnect_initial_s=30.0, reconnect_max_s=60.0)
    src.open()
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(src.read()))
    reader.start()
    time.sleep(0.2)
    started = time.monotonic()
    src.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert time.monotonic() - started < 1.0
    assert result == [None]


def test_failing_camera_is_retried_with_growing_delays_not_a_busy_loop() -> None:
    src, _, built = resilient(["refuse"] * 1000, reconnect_initial_s=0.05, reconnect_max_s=0.2)
    src.open()
    reader = threading.Thread(target=src.read)
    reader.start()
    time.sleep(0.8)
    src.close()
    reader.join(timeout=5)
    # 0.05 + 0.1 + 0.2 + 0.2 ... fits about five attempts in 0.8 s (jitter shortens each by up to 20%)
    assert 2 <= len(built) <= 12


def test_problem_found_by_the_factory_is_raised_at_open() -> None:
    def factory() -> ScriptedCamera:
        raise CameraError("picamera2 is not installed")

    src = ResilientSource(factory, camera("picamera2:0"), lambda state: None)
    with pytest.raises(CameraError, match="not installed"):
        src.open()


def test_file_replay_errors_are_final() -> None:
    src, states, _ = resilient(["refuse"], source="video:clip.avi")
    with pytest.raises(CameraError, match="refused"):
        src.open()
    src, states, _ = resilient(["open", "frame", "lost"], source="video:clip.avi")
    src.open()
    assert src.read() is not None
    with pytest.raises(CameraError, match="lost"):
        src.read()
    src, states, _ = resilient(["open", "end"], source="dir:frames")
    src.open()
    assert src.read() is None
    assert "offline" not in states
