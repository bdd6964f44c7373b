"""sd_notify against a real AF_UNIX datagram socket bound by the test."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_watchdog_stopping_reach_the_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    n.ready("model demo 1.0.0")
    assert recv(sock) == "READY=1\nSTATUS=model demo 1.0.0"
    n.status("fps 29.8\nmodel 1.0.0")
    assert recv(sock) == "STATUS=fps 29.8 model 1.0.0"
    n.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    n.reloading()
    assert recv(sock) == "RELOADING=1"
    n.stopping()
    assert recv(sock) == "STOPPING=1"
    n.close()


def test_abstract_socket_name(tmp_path: Path) -> None:
    name = f"inspection-test-{os.getpid()}-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        n.close()
        assert sock.recv(64) == b"READY=1"


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert Notifier.from_env({"WATCHDOG_USEC": "10000000"}).watchdog_interval_s == 5.0
    assert Notifier.from_env({}).watchdog_interval_s is None
    assert Notifier.from_env({"WATCHDOG_USEC": "junk"}).watchdog_interval_s is None


def test_watchdog_for_another_pid_is_ignored(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None
    n.watchdog()
    n.status("after")
    n.close()
    assert recv(sock) == "STATUS=after"


def test_watchdog_for_this_pid_applies() -> None:
    env = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(env).watchdog_interval_s == 1.0


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    n.ready("x")
    n.status("y")
    n.watchdog()
    n.stopping()


def test_send_error_never_raises_and_is_logged_once(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with capture_logs() as logs:
        for _ in range(5):
            n.status("lost")
    n.close()
    assert [e["log_level"] for e in logs] == ["warning"]
