"""The agent on a full disk (a real 2 MB tmpfs, a real broker, the real process).

The outbox must keep working when the disk refuses its commits: evict by priority (defects
last), say so in health (``degraded`` with the reason) and as an event, count what it loses,
deliver what it kept once the broker is back, answer commands, and recover by itself when
space returns. A full disk at start is not a corrupt outbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.errors import PublishError
from agent.publish.outbox import Outbox
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.tmpfs import fill

pytestmark = pytest.mark.integration


def _health(state_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((state_dir / "health.json").read_text()))
    except (OSError, ValueError):
        return {}


def _wait(what: str, predicate: Callable[[], bool], timeout: float, agent: AgentProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert agent.proc.poll() is None, f"agent exited waiting for {what}:\n{agent.output[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{agent.output[-4000:]}"
        time.sleep(0.2)


def test_full_disk_degrades_evicts_by_priority_delivers_defects_and_recovers(
    mosquitto_factory: Callable[..., Mosquitto],
    small_tmpfs: Callable[[Path, str], Path],
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    disk = small_tmpfs(tmp_path / "disk", "2m")
    filler = fill(disk, leave=600 * 1024)
    broker = mosquitto_factory(start=False)  # down: everything piles up in the outbox
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    state = tmp_path / "work" / "state"
    cfg = write_config(
        tmp_path / "work",
        port=broker.port,
        prefix=unique_prefix,
        source="synthetic:3",
        camera={"realtime": False, "loop": True, "synthetic_defect_rate": 0.3},
        mqtt={"results_qos": 1, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
        outbox={"path": str(disk / "outbox.db")},
        health={"interval_s": 0.5},
    )
    with AgentProcess(cfg) as agent:
        full = lambda: "disk full" in str(_health(state).get("degraded"))  # noqa: E731
        _wait("degraded health", full, 60, agent)
        agent.wait_for_log("outbox_disk_full", 5)
        inspected = _health(state)["counters"]["inspected"]
        _wait(
            "inspection going on", lambda: _health(state)["counters"]["inspected"] > inspected + 50, 30, agent
        )
        report = _health(state)
        assert report["state"] == "degraded" and report["outbox"]["disk_full"]
        assert report["outbox"]["dropped"]["result"] > 0  # results go before defects

        broker.start()
        with Subscriber(broker.port, [f"{root}/defect", f"{root}/event", f"{root}/replies"]) as sub:
            defects = sub.wait_for(5, 30, where=lambda m: m[0] == f"{root}/defect")
            assert len(defects) >= 5, agent.output[-3000:]
            sub.publish(f"{root}/cmd/ping", b"{}", response_topic=f"{root}/replies", correlation=b"p1")
            reply = sub.wait_for(1, 15, where=lambda m: m[0] == f"{root}/replies")
            assert reply and json.loads(reply[0][1])["ok"], agent.output[-3000:]
            filler.unlink()  # space is back
            _wait("recovery", lambda: _health(state).get("state") == "ok", 30, agent)
            back = sub.wait_for(
                1, 15, where=lambda m: m[0] == f"{root}/event" and b'"disk_full":false' in m[1]
            )
            assert back, agent.output[-3000:]
            events = [json.loads(p) for t, p, _ in sub.messages if t == f"{root}/event"]
            disk = [e["details"] for e in events if e["type"] == "outbox_disk"]
            # The "full" event is an event: under pressure it is evicted before defects, and counted;
            # the "back" event always arrives and carries what the episode cost.
            assert disk[0]["disk_full"] or disk[-1]["dropped"]["event"] > 0, disk
            assert disk[-1]["dropped"]["result"] > 0 and not disk[-1]["disk_full"]
        assert agent.proc.poll() is None
        assert "Traceback" not in agent.output


def test_full_disk_at_start_is_a_clear_error_not_a_corrupt_outbox(
    small_tmpfs: Callable[[Path, str], Path], tmp_path: Path
) -> None:
    disk = small_tmpfs(tmp_path / "disk", "1m")
    fill(disk, leave=0)
    path = disk / "outbox.db"
    with pytest.raises(PublishError, match="disk is full"):
        Outbox(path, 1 << 20, 1e9)
    assert not list(disk.glob("outbox.db.corrupt-*"))
