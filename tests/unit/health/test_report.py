from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable

import jsonschema
import structlog

from agent.cli import main
from agent.errors import PublishError
from agent.health import statefile
from agent.pipeline.stats import LatencyWindow
from agent.protocol.schema import load_schema
from tests.unit.health.conftest import Rig

SCHEMA = load_schema("health")


def run_frames(rig: Rig, n: int, total_ms: float) -> None:
    for _ in range(n):
        rig.line.counters.captured += 1
        rig.line.counters.inspected += 1
        rig.line.latency.add((1.0, 0.5, 2.0, 5.0, 0.3, total_ms))


def test_a_report_is_published_retained_when_due_and_validates(rig: Callable[..., Rig]) -> None:
    r = rig(sampler={"uncertain": 3, "drift": 0})
    t0 = time.monotonic()
    assert not r.reporter.tick(t0 + 0.5)
    run_frames(r, 20, 9.0)
    assert r.reporter.tick(t0 + 1.01)
    (message,) = r.sink.messages
    topic, doc, qos, retain = message.topic, message.json(), message.qos, message.retain
    assert topic == "inspection/s/l/cam-01/health" and qos == 0 and retain
    jsonschema.validate(doc, SCHEMA)
    assert doc["state"] == "ok" and doc["camera"] == "online"
    assert doc["counters"]["inspected"] == 20 and doc["counters"]["reconnects"] == 2
    assert doc["latency_frames"] == 20 and doc["latency_ms"]["total"]["p50"] == 9.0
    assert 15 < doc["fps"]["inspected"] < 25
    assert doc["outbox"]["dropped"]["sample"] == 4 and doc["outbox"]["depth"] == 3
    assert doc["sampler"] == {"uncertain": 3, "drift": 0}
    assert doc["model"]["sha256"] == "ab" * 32
    assert doc["system"]["rss_bytes"] > 0 and doc["system"]["disk_free_bytes"] > 0
    assert statefile.read(r.reporter.path) == doc


def test_latency_covers_only_the_interval_since_the_previous_report(rig: Callable[..., Rig]) -> None:
    r = rig()
    run_frames(r, 50, 100.0)
    first = r.reporter.report()
    run_frames(r, 10, 5.0)
    second = r.reporter.report()
    third = r.reporter.report()
    assert first["latency_ms"]["total"]["p99"] == 100.0
    assert second["latency_ms"]["total"]["p99"] == 5.0 and second["latency_frames"] == 10
    assert third["latency_ms"] == {} and third["latency_frames"] == 0
    jsonschema.validate(third, SCHEMA)


def test_an_interval_longer_than_the_ring_reports_its_last_frames() -> None:
    window = LatencyWindow(size=8)
    for i in range(20):
        window.add((0, 0, 0, 0, 0, float(i)))
    pct, count = window.drain_interval()
    assert count == 20 and pct["total"]["p50"] == 15.5  # frames 12..19


def test_qos1_goes_through_the_outbox_below_events(rig: Callable[..., Rig]) -> None:
    r = rig(qos=1)
    r.reporter.report()
    assert r.sink.messages[0].qos == 1


def test_a_degraded_agent_says_so(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.watch.degraded = "infer stuck"
    doc = r.reporter.report()
    assert doc["state"] == "degraded" and doc["degraded"] == "infer stuck"


def test_a_refused_publish_still_writes_the_file_and_is_logged_once(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.sink.fail = PublishError("publisher is stopped")
    with structlog.testing.capture_logs() as logs:
        r.reporter.report()
        r.reporter.report()
    assert [e["event"] for e in logs] == ["health_publish_failed"]
    assert statefile.read(r.reporter.path) is not None


def test_an_unwritable_state_dir_does_not_stop_publishing(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.reporter.path.parent.parent.mkdir(parents=True, exist_ok=True)
    r.reporter.path.parent.write_text("a file where the state directory should be")
    with structlog.testing.capture_logs() as logs:
        r.reporter.report()
        r.reporter.report()
    assert len(r.sink.messages) == 2
    assert [e["event"] for e in logs] == ["health_file_failed"]
    assert "cannot write" in logs[0]["error"]


def test_stop_marks_the_file_stopped(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.reporter.report()
    r.reporter.stop("SIGTERM")
    doc = statefile.read(r.reporter.path)
    assert doc is not None and doc["state"] == "stopped" and doc["reason"] == "SIGTERM"
    jsonschema.validate(doc, SCHEMA)


def test_start_writes_a_first_file_so_status_sees_a_starting_agent(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.watch.ready = False  # the camera and model are not up yet
    r.reporter.start()
    doc = statefile.read(r.reporter.path)
    assert doc is not None and doc["state"] == "starting" and doc["pid"] == os.getpid()
    jsonschema.validate(doc, SCHEMA)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", "--config", str(r.cfg.base_dir / "agent.yaml")])
    assert code == 0 and "NOT RUNNING" not in out.getvalue() and "starting" in out.getvalue()
