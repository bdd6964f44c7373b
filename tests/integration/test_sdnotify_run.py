"""`inspection-agent run` speaks sd_notify: READY once frames flow, watchdog pings only while they flow.

The test binds the notification socket itself (as systemd would) and passes NOTIFY_SOCKET and
WATCHDOG_USEC to the real agent, whose camera is a real RTSP server; stopping the server stalls
the camera, and the pings must stop with it.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model.store import ModelStore
from tests.support.agentproc import AgentProcess, write_config
from tests.support.rtsp import RtspServer
from tests.unit.model.packages import write_package

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class NotifyListener:
    """The service manager's end: collects (monotonic time, message) datagrams."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, line: str, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.messages) if line in m.splitlines() and t >= since]

    def wait_for(self, line: str, timeout: float, count: int = 1, since: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.times(line, since)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {line!r} x{count} within {timeout}s; got {self.messages[-5:]}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def test_ready_then_watchdog_while_frames_flow_and_silence_when_the_camera_stalls(
    tmp_path: Path, listener: NotifyListener, rtsp_server: RtspServer, mosquitto: Any, unique_prefix: str
) -> None:
    store = tmp_path / "store"
    ModelStore(store).install(write_package(tmp_path / "pkg", "cls_u8.tflite", name="demo", version="1.0.0"))
    ModelStore(store).activate("demo", "1.0.0")
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source=rtsp_server.url,
        package=store / "demo" / "current",
        camera={"realtime": True, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "read_timeout_s": 5.0},
    )  # fmt: skip
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "2000000"})
    try:
        listener.wait_for("READY=1", 60)
        ready = listener.times("READY=1")[0]
        statuses = [m for _, m in listener.messages if m.startswith(("STATUS=", "READY=1\nSTATUS="))]
        assert any("model demo 1.0.0" in s for s in statuses), statuses
        listener.wait_for("WATCHDOG=1", 15, count=3, since=ready)
        assert listener.times("WATCHDOG=1")[0] >= ready  # no ping before the pipeline proved itself

        rtsp_server.stop()
        stalled = time.monotonic()
        time.sleep(7.0)  # stall detection: max(2 s, 5 frames); the capture hang limit (11 s) is later
        late = listener.times("WATCHDOG=1", since=stalled + 3.0)
        assert late == [], f"watchdog pings continued {[t - stalled for t in late]} s after the stall"
        assert agent.proc.poll() is None, agent.output[-2000:]

        agent.signal(signal.SIGTERM)
        agent.wait(30)
        assert listener.times("STOPPING=1"), listener.messages[-5:]
    finally:
        agent.stop()
