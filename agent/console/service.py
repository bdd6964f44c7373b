"""The console as the agent runs it: the live view (a frame observer) plus its web server.

Imported only when ``web.listen`` is set (it imports the web stack). The socket is bound when
the agent is built, so a busy port stops the agent at start with the address; the server and
the preview thread start at the first main-loop tick and stop with the observers at shutdown.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from agent.config.schema import AgentConfig
from agent.console.commands import ROLES
from agent.console.host import Host
from agent.console.live import LiveView
from agent.console.web import LocalContext, build_console_app
from agent.web.app import WebContext
from agent.web.auth import LoginLimiter, Signer, load_secret, revoked_beside
from agent.web.config import WebConfig, require_web
from agent.web.server import WebServer
from agent.web.users import Users

log = structlog.get_logger(__name__)


class Console(LiveView):
    """The technician's console: a frame observer that serves pages about what it observes."""

    def __init__(self, cfg: AgentConfig, host: Host) -> None:
        require_web()
        web = cfg.web
        model = host.slot.model
        super().__init__(web, model.package.manifest.input, model.package.manifest.reference)
        self._host = host
        auth = web.auth
        secret = cfg.resolve(auth.secret_file) if auth.secret_file else cfg.state_dir / "web-secret.key"
        users_file = cfg.resolve(auth.users_file) if auth.users_file else cfg.state_dir / "web-users.none"
        context = WebContext if auth.users_file else LocalContext
        ctx = context(
            users=Users(users_file, ROLES),
            signer=Signer(load_secret(secret), auth.session_max_age_s),
            limiter=LoginLimiter(auth.login_max_failures, auth.login_window_s),
            title=f"Console · {cfg.device.id}",
            home="/",
            template_dirs=[_templates()],
            nav=(("/", "Live", "viewer"),),
            secure_cookies=web.tls is not None,
            revoked=revoked_beside(secret),
        )
        listen = WebConfig(listen=web.listen or "127.0.0.1:0")
        tls = (str(cfg.resolve(web.tls.cert_file)), str(cfg.resolve(web.tls.key_file))) if web.tls else None
        self.server = WebServer(build_console_app(ctx, host, self), listen, tls_files=tls)
        self._started = False
        self._closed = False

    @property
    def url(self) -> str:
        return self.server.url

    def tick(self) -> None:
        if not self._started:
            self._started = True
            self.start()
            self.server.start()
            log.info("console_started", url=self.server.url, auth=self.cfg.auth.users_file is not None)
        model = self._host.slot.model
        self.set_model(model.package.manifest.input, model.package.manifest.reference)

    def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        super().close(timeout)
        if self._started:
            self.server.stop(timeout)


def _templates() -> Path:
    return Path(__file__).parent / "templates"
