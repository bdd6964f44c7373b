"""Run the real ``inspection-agent`` command as a subprocess against a config written for the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import DEMO_MODEL, REPO

_STARTED: list[AgentProcess] = []


@pytest.fixture(autouse=True)
def _no_agent_outlives_its_test() -> Iterator[None]:
    """Every agent a test started is killed and its log closed, even when the test failed early."""
    yield
    while _STARTED:
        _STARTED.pop().kill()


def agent_command() -> list[str]:
    """The installed console script when present (as a user runs it), else ``python -m agent``."""
    script = Path(sys.executable).parent / "inspection-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def write_config(
    work: Path,
    *,
    port: int,
    prefix: str,
    source: str,
    package: Path = DEMO_MODEL,
    runtime: str = "auto",
    device: str = "cam-01",
    **sections: Any,
) -> Path:
    """A complete agent config in ``work``; keyword sections are merged over the defaults."""
    work.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "device": {"id": device, "site": "plant-a", "line": "line-3"},
        "camera": {"source": source, "fps": 30, "realtime": False, "loop": False},
        "model": {"path": str(package), "runtime": runtime, "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "qos": 1},
        "outbox": {"path": str(work / "outbox.db")},
        "state": {"dir": str(work / "state")},
        "log": {"level": "info", "format": "json"},
    }
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(_merge(cfg, sections), sort_keys=False))
    return path


class AgentProcess:
    """``inspection-agent run --config PATH`` in the background; output collected in a log file."""

    def __init__(
        self, config: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.log_path = config.parent / "agent.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(
            [*agent_command(), *(args or ["run", "--config", str(config)])],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=config.parent,
        )
        _STARTED.append(self)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if not self._log.closed:
                self._log.flush()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *_: object) -> None:
        """Whatever the test did: the process is gone and its log closed."""
        self.kill()

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_event(self, event: str) -> dict[str, Any] | None:
        """The first JSON log line whose event is ``event``, or None."""
        for line in self.output.splitlines():
            if line.startswith("{") and f'"event": "{event}"' in line:
                return dict(json.loads(line))
        return None

    def wait_for_log(self, event: str, timeout: float) -> dict[str, Any]:
        """The JSON log line for ``event``, waiting up to ``timeout`` seconds for it.

        Fails at once (not at the deadline) when the agent exits without having logged it.
        """
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll()  # read before the log: an exit seen here means the log is whole
            found = self.log_event(event)
            if found is not None:
                return found
            assert exited is None, f"agent exited ({exited}) without logging {event}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {event} within {timeout} s:\n{self.output}"
            time.sleep(0.1)


def run_agent(
    args: list[str], *, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one short ``inspection-agent`` command (check, model validate, …) and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*agent_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )
