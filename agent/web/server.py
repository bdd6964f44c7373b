"""uvicorn in a thread of its own, beside the collector's (or the agent's) threads, with a clean stop.

The socket is bound before the thread starts, so "address in use" is an error at start-up (with
the address), port 0 picks a free port (tests), and :attr:`WebServer.port` tells which.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import structlog

from agent.web.config import WebConfig, WebError

log = structlog.get_logger(__name__)


class WebServer:
    """``start()`` returns once the server accepts connections; ``stop()`` finishes open requests."""

    def __init__(self, app: Any, cfg: WebConfig, *, tls_files: tuple[str, str] | None = None) -> None:
        import uvicorn

        self.cfg = cfg
        self._sock = _bind(cfg.host, cfg.port)
        self.port: int = self._sock.getsockname()[1]
        options: dict[str, Any] = {}
        if tls_files is not None:
            _check_tls(*tls_files)
            options = {"ssl_certfile": tls_files[0], "ssl_keyfile": tls_files[1]}
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5,
            server_header=False, proxy_headers=False, **options,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self.failure: BaseException | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._server.config.ssl_certfile else "http"
        host = self.cfg.host if ":" not in self.cfg.host else f"[{self.cfg.host}]"
        return f"{scheme}://{host}:{self.port}"

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()/alive, never lost silently
            self.failure = exc
            log.error("web_server_failed", error=str(exc))

    def start(self, timeout: float = 10.0) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self.failure is not None or not self._thread.is_alive():
                raise WebError(f"web: the server on {self.cfg.listen} did not start: {self.failure}")
            if time.monotonic() > deadline:
                raise WebError(f"web: the server on {self.cfg.listen} did not start within {timeout} s")
            time.sleep(0.01)
        log.info("web_listening", url=self.url)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
        log.info("web_stopped")


def _check_tls(cert: str, key: str) -> None:
    """Load the pair once here, so that a missing file, a password-protected key or a key of
    another certificate stops the process at start with one line, not the server thread later."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=lambda: b"")  # an encrypted key fails, never prompts
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror or exc  # "No such file or directory", "[SSL: KEY_VALUES_MISMATCH] key ..."
        raise WebError(f"web.tls: cannot load cert_file {cert} with key_file {key}: {why}") from exc


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WebError(f"web: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock
