"""The systemd sd_notify protocol, spoken directly: one datagram per state change.

Why no library: the protocol is one ``sendto`` of ``KEY=VALUE`` lines on an AF_UNIX datagram
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Outside
systemd the variable is unset and every method is a no-op, so the pipeline calls it unconditionally.
A failed send never raises: losing a status line must not stop inspection. Only the first failure
is logged, so a vanished socket cannot flood the journal at the frame rate.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING/RELOADING to the service manager."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``/``WATCHDOG_PID`` as systemd sets them.

        The watchdog applies only when ``WATCHDOG_PID`` is unset or names this process: a child
        that inherited the environment must not feed its parent's watchdog.
        """
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of ``WatchdogSec=``, as sd_watchdog_enabled(3) advises."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 2_000_000

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> None:
        self._send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        if self._watchdog_usec is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("sd_notify_send_failed", error=str(exc), note="further failures are not logged")


def _socket_address(address: str) -> str | bytes:
    """``@name`` is Linux's abstract namespace: a leading NUL byte on the wire."""
    return b"\0" + address[1:].encode("utf-8") if address.startswith("@") else address


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec


def _one_line(text: str) -> str:
    return " ".join(text.split())
