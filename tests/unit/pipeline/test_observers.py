"""Frame observers are side work: one that raises never stops inspection (a real pipeline, a real model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import structlog

from agent.capture.base import Frame
from agent.events import EventKind, Severity
from agent.health.report import HealthReporter
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.pipeline.observers import Observers
from agent.protocol.payloads import ResultPayload
from agent.protocol.schema import load_schema
from agent.protocol.topics import Topics
from agent.testing import RecordingSink
from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package

Build = Callable[..., Harness]
FRAMES = 30


class Exploding(FrameObserver):
    """A buggy observer: raises on every frame."""

    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        self.calls += 1
        raise ZeroDivisionError("division by zero")


class Counting(FrameObserver):
    name = "counting"

    def __init__(self) -> None:
        self.frames: list[int] = []

    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        self.frames.append(frame.seq)


def test_an_observer_that_raises_on_every_frame_is_disabled_and_inspection_goes_on(
    build: Build, tmp_path: Path
) -> None:
    bad, good = Exploding(), Counting()
    h = build(
        f"dir:{frames_dir(tmp_path / 'frames', FRAMES)}", slow_package(tmp_path / "pkg", 1), (bad, good)
    )
    with structlog.testing.capture_logs() as logs:
        h.pipeline.start()
        assert h.run_until(h.pipeline.done.is_set, 30)
    assert h.pipeline.failure is None
    assert [r["frame"] for r in h.sink.on("result")] == list(range(FRAMES))  # every frame published
    assert good.frames == list(range(FRAMES))  # the observer after the bad one saw every frame
    health = h.pipeline.observers.health()
    assert health["exploding"] == {"failures": 10, "disabled": True, "errors": ["ZeroDivisionError"]}
    assert bad.calls == 10  # disabled: not called again
    assert health["counting"]["failures"] == 0 and not health["counting"]["disabled"]
    (event,) = h.sink.of(EventKind.OBSERVER_DISABLED)
    assert event.severity is Severity.ERROR and event.details["observer"] == "exploding"
    failed = [e for e in logs if e["event"] == "observer_failed"]
    assert len(failed) == 1 and failed[0]["error_type"] == "ZeroDivisionError"  # logged once per kind


def test_the_health_report_counts_observer_failures_and_validates(build: Build, tmp_path: Path) -> None:
    h = build(f"dir:{frames_dir(tmp_path / 'frames', 5)}", slow_package(tmp_path / "pkg", 1), (Exploding(),))
    h.pipeline.start()
    assert h.run_until(h.pipeline.done.is_set, 30)
    reporter = HealthReporter(
        h.cfg,
        pipeline=h.pipeline,
        supervisor=h.supervisor,
        sink=h.sink,
        topics=Topics.from_config(h.cfg),
        publisher_stats=dict,
        status=lambda: {"camera": "online", "model": h.slot.model.summary},
        observers=h.pipeline.observers,
    )
    doc = reporter.report()
    schema = load_schema("health")
    jsonschema.validate(doc, schema)
    assert doc["scheduling"]["priority"] == "watching"  # a short run: still measuring
    assert doc["observers"]["exploding"] == {
        "failures": 5,
        "disabled": False,
        "errors": ["ZeroDivisionError"],
    }
    assert doc["observers"]["swap_watch"]["failures"] == 0


class Flaky(FrameObserver):
    """Fails ``pattern[i]`` on call i (True = raise), in a given exception type per call."""

    name = "flaky"

    def __init__(self, pattern: list[type[Exception] | None]) -> None:
        self.pattern = pattern
        self.calls = 0

    def tick(self) -> None:
        error = self.pattern[self.calls]
        self.calls += 1
        if error is not None:
            raise error("boom")


def test_only_failures_in_a_row_disable_and_each_kind_is_logged_once() -> None:
    sink = RecordingSink()
    flaky = Flaky(
        [ValueError, ValueError, None, KeyError, ValueError, None, ValueError, ValueError, ValueError]
    )
    observers = Observers([flaky], emit=sink, max_failures=3)
    with structlog.testing.capture_logs() as logs:
        for _ in range(6):
            observers.tick()
        assert not observers.health()["flaky"]["disabled"]  # never 3 in a row so far
        for _ in range(3):
            observers.tick()
    health = observers.health()["flaky"]
    assert health == {"failures": 7, "disabled": True, "errors": ["KeyError", "ValueError"]}
    assert [e["error_type"] for e in logs if e["event"] == "observer_failed"] == ["ValueError", "KeyError"]
    assert len(sink.of(EventKind.OBSERVER_DISABLED)) == 1
    observers.tick()  # disabled: not called, nothing raised
    assert flaky.calls == 9


def test_the_base_observer_is_a_valid_do_nothing_observer() -> None:
    base: Any = FrameObserver()
    observers = Observers([base], emit=RecordingSink())
    observers.tick()
    observers.close(0.1)
    assert observers.section("observer") is None
    assert observers.health() == {"observer": {"failures": 0, "disabled": False, "errors": []}}


def test_a_failing_health_section_is_counted_not_raised() -> None:
    class BadHealth(FrameObserver):
        name = "bad"

        def health(self) -> dict[str, Any] | None:
            raise RuntimeError("bug")

    observers = Observers([BadHealth()], emit=RecordingSink())
    assert observers.section("bad") is None
    assert observers.health()["bad"]["failures"] == 1
