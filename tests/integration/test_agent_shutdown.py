"""Every way out of ``Agent.run`` says offline: a bug in a main-loop tick, through a real mosquitto.

The agent runs in its own process (as systemd runs it) with one main-loop part made to raise,
the way a bug would; the test harness below does that from outside the shipped code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.protocol.topics import Topics
from tests.support.agentproc import write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

# Runs the real Agent; after ``after`` calls the chosen tick raises, as a bug in it would.
HARNESS = """
import sys
from agent.app import Agent
from agent.config import load_config
from agent.log import configure

config, part, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = load_config(config)
configure(cfg.log.level, cfg.log.format, device=cfg.device.id)
agent = Agent(cfg)
target = getattr(agent, part)
real = target.tick
calls = []

def tick(*args):
    calls.append(1)
    if len(calls) >= after:
        raise RuntimeError(f"{part} tick exploded")
    return real(*args)

target.tick = tick
sys.exit(agent.run())
"""


@pytest.mark.parametrize("part", ["supervisor", "health"])
def test_a_tick_that_raises_still_says_offline_and_exits_non_zero(
    part: str, mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:1",
        camera={"loop": True}, health={"interval_s": 0.5},
    )  # fmt: skip
    topics = Topics(prefix=unique_prefix, site="plant-a", line="line-3", device="cam-01")
    with Subscriber(mosquitto.port, [topics.status, topics.result]) as sub:
        proc = subprocess.run(
            [sys.executable, "-c", HARNESS, str(config), part, "30"],
            capture_output=True, text=True, timeout=60, cwd=config.parent, check=False,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        # The process has exited: a last will (there is no will delay) would follow its socket's close.
        statuses = sub.wait_for(2, 3, where=lambda m: m[0] == topics.status and b"offline" in m[1])
    assert proc.returncode != 0, proc.stderr
    assert f"RuntimeError: {part} tick exploded" in proc.stderr  # the error itself is not swallowed
    assert any(m[0] == topics.result for m in sub.messages)  # it did run before the bug
    offline = [json.loads(m[1]) for m in statuses]
    # The agent's own offline status with the reason, not the broker's last will ("connection lost").
    assert offline and offline[-1]["reason"] == f"{part} tick exploded", (offline, proc.stderr[-2000:])
    health = json.loads((tmp_path / "agent" / "state" / "health.json").read_text())
    assert health["state"] == "stopped" and health["reason"] == f"{part} tick exploded"
