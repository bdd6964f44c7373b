"""A real GStreamer RTSP server on a loopback port, for the camera tests.

The server runs in the system Python (``/usr/bin/python3`` has ``gi`` and
GstRtspServer; the venv does not) as ``tests/support/rtsp_server.py``. It can be
stopped and started again on the same port, which is how the tests pull the
plug on a camera. Needs the Debian packages python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-base, gstreamer1.0-plugins-good and (for H.264)
gstreamer1.0-plugins-ugly.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import free_port

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_PROBE = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"


@functools.cache
def unavailable_reason() -> str | None:
    """Why no RTSP server can run here, or None when it can."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return (
            f"{SYSTEM_PYTHON} cannot import gi/GstRtspServer "
            "(apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
            "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)"
        )
    return None


class RtspServer:
    """``rtsp://127.0.0.1:{port}{path}`` serving a live 320x240 test pattern at 15 fps."""

    def __init__(self, port: int, path: str = "/test") -> None:
        self.port = port
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None
        # The server's stderr, quoted when it fails to start; open across restarts, closed by close().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it accepts TCP connections."""
        if self.running:
            return
        cmd = [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"RTSP server exited at start: {self._stderr()}")
            if _accepts(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"RTSP server did not listen on port {self.port} within {timeout:g} s: {self._stderr()}"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); the port is free again afterwards."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stderr(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "(no output)"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """A running RTSP server on a free port (``.url``), stopped and restartable by the test."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = RtspServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.close()
