"""A real agent following a model store, flashed with deploy/flash-model through a real sshd.

The device is this machine: the store is a temp dir reached over SSH, and the device's CLI is
this checkout's ``inspection-agent`` (``python -m agent``). Shared by the flash, train and
shadow tests so each states only what it flashes and what it expects.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.model.store import ModelStore
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Subscriber
from tests.support.paths import REPO
from tests.support.sshd import SshServer

DEVICE_CLI = f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m agent"
REAL_VALIDATE = f"{DEVICE_CLI} model validate"


def flash(sshd: SshServer, store: Path, package: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``deploy/flash-model PACKAGE`` onto the store behind ``sshd``."""
    argv = [
        sys.executable, str(REPO / "deploy" / "flash-model"), str(package), sshd.host,
        "--ssh-port", str(sshd.port), "--user", sshd.user, "--identity", str(sshd.identity),
        "--known-hosts", str(sshd.known_hosts), "--store", str(store), "--device-cli", DEVICE_CLI,
        "--config", str(store.parent / "cam-01.yaml"), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def wait_state(path: Path, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The first model-state.json (or health.json) that ``predicate`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = None
        if state is not None and predicate(state):
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"{path.name} never matched; last: {path.read_text() if path.exists() else None}")


@dataclass
class StoreAgent:
    """The running agent, its store, where it reports, and the flash options that reload it."""

    agent: AgentProcess
    store: Path
    state_dir: Path
    results: Subscriber
    reload: list[str]  # --reload pid:… --state-file … --timeout 60

    def flash(self, sshd: SshServer, package: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return flash(sshd, self.store, package, *self.reload, *extra)


@contextlib.contextmanager
def agent_on_store(
    tmp_path: Path, port: int, prefix: str, first: Path, name: str = "demo", **sections: Any
) -> Iterator[StoreAgent]:
    """Package ``first`` installed and current in a store; a real agent running ``{name}/current``
    on a synthetic realtime camera at 20 fps, results subscribed, until the block ends."""
    store = tmp_path / "store"
    ModelStore(store).install(first)
    version = ModelStore(store).versions(name)[0]
    ModelStore(store).activate(name, version)
    config = write_config(
        tmp_path / "agent", port=port, prefix=prefix, source="synthetic:1",
        package=store / name / "current", camera={"realtime": True, "fps": 20}, **sections,
    )  # fmt: skip
    state_dir = tmp_path / "agent" / "state"
    results = Subscriber(port, f"{prefix}/plant-a/line-3/cam-01/result")
    agent = AgentProcess(config)
    try:
        wait_state(state_dir / "model-state.json", lambda s: s["version"] == version)
        pid_file = tmp_path / "agent.pid"
        pid_file.write_text(str(agent.proc.pid))
        reload = ["--reload", f"pid:{pid_file}", "--state-file", str(state_dir / "model-state.json")]
        yield StoreAgent(agent, store, state_dir, results, [*reload, "--timeout", "60"])
    finally:
        agent.stop()
        results.close()


def assert_one_clean_switch(results: Subscriber, old: str, new: str) -> None:
    """Every result so far: ``old`` then ``new``, one switch, no frame lost around it."""
    seen = [json.loads(p) for _, p, _ in results.wait_for(10**6, timeout=1)]
    frames, versions = [r["frame"] for r in seen], [r["model"]["version"] for r in seen]
    switch = versions.index(new)
    assert set(versions[:switch]) == {old} and set(versions[switch:]) == {new}
    around = frames[max(0, switch - 5) : switch + 5]  # around the swap (load elsewhere may drop others)
    assert around == list(range(around[0], around[0] + len(around))), (frames, switch)
