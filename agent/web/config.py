"""``web:`` — where the pages listen and who may log in (validated by agent/config/typed.py).

No third-party import here: the config is validated even where the ``web`` extra is absent,
and :func:`require_web` says which extra to install when the server is actually started.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from agent.config.schema import Problems
from agent.errors import AgentError

WEB_MODULES = ("starlette", "uvicorn", "jinja2", "multipart")


class WebError(AgentError):
    """The web server cannot start (missing extra, users file, address in use)."""


@dataclass(frozen=True, slots=True)
class WebTlsConfig:
    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"  # HOST:PORT; port 0 picks a free one (tests)
    users_file: str = "users.yaml"  # written by `inspection-agent collector adduser`
    secret_file: str | None = None  # session signing key; default {state dir}/web-secret.key
    tls: WebTlsConfig | None = None  # HTTPS (cookies then carry Secure); or put a TLS proxy in front
    session_max_age_s: int = 12 * 3600
    login_max_failures: int = 5  # per user name and per client address ...
    login_window_s: int = 300  # ... within this window; more are refused (429) and logged

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def _check(self) -> Problems:
        problems: Problems = []
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            problems.append(("listen", "must be HOST:PORT, e.g. 127.0.0.1:8080"))
        if self.session_max_age_s < 60:
            problems.append(("session_max_age_s", "must be at least 60"))
        if self.login_max_failures < 1 or self.login_window_s < 1:
            problems.append(("login_max_failures", "login_max_failures and login_window_s must be >= 1"))
        return problems


def require_web() -> None:
    """Fail at start, with the extra to install, when the web libraries are missing."""
    missing = [m for m in WEB_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise WebError(
            f"web: needs {', '.join(missing)}; install the extra: pip install 'edge-inspection-agent[web]'"
        )
