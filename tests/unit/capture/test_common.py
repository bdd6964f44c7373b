"""The deadline pacer and the live/lossless choice."""

from __future__ import annotations

import pytest

from agent.capture.common import Pacer, is_live
from tests.unit.capture.helpers import camera


class FakeClock:
    """Time that moves only when slept through or advanced by the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_releases_frames_on_a_fixed_grid_without_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock, sleep=clock.sleep)
    releases = []
    for _ in range(5):
        pacer.wait()
        releases.append(round(clock.now, 6))
        clock.now += 0.03  # the consumer's work between reads
    assert releases == [100.0, 100.1, 100.2, 100.3, 100.4]
    assert all(s == pytest.approx(0.07) for s in clock.sleeps)


def test_pacer_catches_up_within_a_period_but_does_not_burst_after_a_stall() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock, sleep=clock.sleep)
    pacer.wait()
    clock.now += 0.15  # late by half a period: the next frame is released at once
    pacer.wait()
    assert clock.sleeps == []
    pacer.wait()
    assert clock.now == pytest.approx(100.2)  # back on the grid
    clock.now += 5.0  # a long stall: no burst of 50 frames, a new grid from now
    pacer.wait()
    pacer.wait()
    assert clock.sleeps[-1] == pytest.approx(0.1)


def test_pacer_without_fps_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        pacer.wait()
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("source", "live", "expected"),
    [
        ("video:a.avi", None, False),
        ("dir:imgs", None, False),
        ("glob:*.png", None, False),
        ("synthetic:", None, True),
        ("rtsp://cam/x", None, True),
        ("v4l2:0", None, True),
        ("video:a.avi", True, True),
        ("synthetic:3", False, False),
    ],
)
def test_live_is_automatic_unless_configured(source: str, live: bool | None, expected: bool) -> None:
    assert is_live(camera(source, live=live)) is expected
