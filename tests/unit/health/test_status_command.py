from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from agent.cli import main
from agent.health import statefile
from tests.unit.health.conftest import Rig


def status(rig: Rig, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["status", "--config", str(rig.cfg.base_dir / "agent.yaml"), *extra])
    return code, capsys.readouterr().out


def test_a_fresh_report_is_printed_readably(
    rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    r.line.latency.add((1, 1, 1, 1, 1, 9.0))
    sum(i * i for i in range(2_000_000))  # CPU time on this thread that the report will show
    r.reporter.report()
    code, out = status(r, capsys)
    assert code == 0
    assert "busiest threads (% of a core): main " in out
    assert "state: ok" in out and "camera: online" in out
    assert "model: demo 1.0.0 (abababababab…)" in out
    assert "total p50 9.0" in out and "connected; depth 3" in out


def test_json_output_is_the_report_plus_the_verdict(
    rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    r.reporter.report()
    code, out = status(r, capsys, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["problem"] is None and doc["device"] == "cam-01"


def test_no_report_means_not_running(rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = status(rig(), capsys)
    assert code == 1 and out.startswith("NOT RUNNING: no health report at")


def test_an_old_report_is_stale(rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]) -> None:
    r = rig()
    doc = r.reporter.report()
    statefile.write_atomic(r.reporter.path, {**doc, "ts": int((time.time() - 60) * 1000)})
    code, out = status(r, capsys)
    assert code == 1 and out.startswith("STALE: last report 60 s ago")


def test_a_dead_process_or_a_clean_stop_is_not_running(
    rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    doc = r.reporter.report()
    statefile.write_atomic(r.reporter.path, {**doc, "pid": 2**22 + 12345})
    code, out = status(r, capsys)
    assert code == 1 and "NOT RUNNING: process" in out
    r.reporter.stop("SIGTERM")
    code, out = status(r, capsys, "--json")
    assert code == 1 and "stopped" in json.loads(out)["problem"]


def test_a_garbled_file_is_a_one_line_error(
    rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    r.reporter.path.parent.mkdir(parents=True)
    r.reporter.path.write_text("{not json")
    code = main(["status", "--config", str(r.cfg.base_dir / "agent.yaml")])
    err = capsys.readouterr().err
    assert code == 3 and "is not a health report (invalid JSON" in err and len(err.splitlines()) == 1


def test_drift_line_does_not_contradict_itself() -> None:
    from agent.commands.status import _drift

    lone = {"enabled": True, "active": False, "windows": 1, "drifting_windows": 1}
    assert _drift(lone) == "no alarm (it needs drifting windows in a row); 1 of 1 window drifted"
    assert _drift({**lone, "drifting_windows": 0, "windows": 4}) == "ok; 0 of 4 windows drifted"
    alarm = {**lone, "active": True, "windows": 9, "drifting_windows": 3, "last": {"reasons": ["brightness"]}}
    assert _drift(alarm) == "ALARM; 3 of 9 windows drifted; last: brightness"


def test_a_session_takeover_shows_even_while_connected() -> None:
    from agent.commands.status import _outbox

    error = "session taken over: another device uses client id x: give each device its own device.id"
    line = _outbox({"connected": True, "last_error": error, "depth": 0, "bytes": 0})
    assert line.startswith(f"connected but {error}")
    assert _outbox({"connected": True, "last_error": "connection lost: x", "depth": 0}).startswith(
        "connected;"
    )
