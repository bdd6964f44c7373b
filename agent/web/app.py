"""The Starlette application every web UI is built on: login, roles, CSRF, headers, templates.

An application hands :func:`build_app` its routes; each endpoint is wrapped by :func:`guard`,
which finds the user from the session cookie, enforces the role, and checks the CSRF token of
every state-changing request (form field ``csrf`` or header ``X-CSRF-Token``). Pages answer an
anonymous visitor with a redirect to /login, the JSON API with 401.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.errors import AgentError
from agent.web.auth import PRELOGIN_COOKIE, SESSION_COOKIE, LoginLimiter, Revoked, Signer
from agent.web.users import Users

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The logged-in user of one request, with the CSRF token its forms must carry."""

    name: str
    role: str
    csrf: str


@dataclass(slots=True)
class WebContext:
    """What every endpoint of one application shares."""

    users: Users
    signer: Signer
    limiter: LoginLimiter
    title: str
    home: str
    template_dirs: Sequence[Path]
    secure_cookies: bool = False
    nav: Sequence[tuple[str, str, str]] = ()  # (href, text, role needed)
    revoked: Revoked = field(default_factory=lambda: Revoked(None))  # sessions ended by logout
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        loader = jinja2.FileSystemLoader([*map(str, self.template_dirs), str(HERE / "templates")])
        self.env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["utc"] = _utc

    @property
    def roles(self) -> tuple[str, ...]:
        return self.users.roles

    def allows(self, role: str, needed: str) -> bool:
        """Roles are ordered from least to most privileged; a higher one may do what a lower may."""
        return self.roles.index(role) >= self.roles.index(needed)

    def render(
        self, name: str, principal: Principal | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        nav = [(h, t) for h, t, r in self.nav if principal is not None and self.allows(principal.role, r)]
        html = self.env.get_template(name).render(title=self.title, user=principal, nav=nav, **values)
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})

    def principal(self, request: Request) -> Principal | None:
        session = self.signer.check(request.cookies.get(SESSION_COOKIE))
        if session is None or session.nonce in self.revoked:
            return None
        user = self.users.get(session.user)
        if user is None or self.signer.fingerprint(user.password_hash) != session.fingerprint:
            return None  # removed, or the password changed since this session began
        return Principal(user.name, user.role, self.signer.csrf(session.nonce))


def _utc(ms: int | None) -> str:
    """Epoch milliseconds as a readable UTC time, for tables."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


Endpoint = Callable[[Request, Principal], Any]


class HttpError(Exception):
    """An error an endpoint answers with: a status and one line for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def guard(
    ctx: WebContext, role: str, *, api: bool
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Wrap an endpoint ``(request, principal)``: authentication, role, CSRF, errors as responses."""

    def wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            principal = ctx.principal(request)
            if principal is None:
                if api:
                    return JSONResponse({"error": "not logged in"}, 401)
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"/login?next={target}", 303)
            try:
                if not ctx.allows(principal.role, role):
                    raise HttpError(403, f"this needs the {role} role")
                if request.method in UNSAFE and not await _csrf_ok(request, principal.csrf):
                    log.warning("csrf_rejected", user=principal.name, path=request.url.path)
                    raise HttpError(403, "missing or invalid CSRF token (reload the page)")
                if inspect.iscoroutinefunction(endpoint):
                    result: Response = await endpoint(request, principal)
                else:
                    result = await run_in_threadpool(endpoint, request, principal)
                return result
            except (HttpError, AgentError) as exc:  # an AgentError may carry its HTTP status
                status = getattr(exc, "status", 500)
                if status >= 500:
                    log.error("web_request_failed", path=request.url.path, error=str(exc))
                if api:
                    return JSONResponse({"error": str(exc)}, status)
                return ctx.render("error.html", principal, status, message=str(exc))

        return handle

    return wrap


async def _csrf_ok(request: Request, expected: str) -> bool:
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        token = str((await request.form()).get("csrf") or "") or None
    return token is not None and token == expected


def _safe_next(target: str | None, home: str) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    return target


def login_routes(ctx: WebContext) -> list[BaseRoute]:
    async def login_page(request: Request) -> Response:
        nonce = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(16)
        return _login_form(ctx, request, nonce, error=None, status=200)

    async def login(request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(PRELOGIN_COOKIE) or ""
        if not nonce or not ctx.signer.csrf_ok(nonce, str(form.get("csrf") or "")):
            return _login_form(ctx, request, nonce or "x", error="The form expired; try again.", status=403)
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        address = request.client.host if request.client else "?"
        if ctx.limiter.blocked(name, address):
            return _login_form(
                ctx, request, nonce, error="Too many failed logins; wait a few minutes.", status=429
            )
        user = await run_in_threadpool(ctx.users.authenticate, name, password)
        if user is None:
            ctx.limiter.failed(name, address)
            return _login_form(ctx, request, nonce, error="Wrong user name or password.", status=401)
        ctx.limiter.succeeded(name)
        log.info("login", user=name, address=address)
        response = RedirectResponse(_safe_next(str(form.get("next") or ""), ctx.home), 303)
        response.set_cookie(
            SESSION_COOKIE, ctx.signer.issue(user.name, user.password_hash), max_age=ctx.signer.max_age_s,
            httponly=True, samesite="strict", secure=ctx.secure_cookies,
        )  # fmt: skip
        response.delete_cookie(PRELOGIN_COOKIE)
        return response

    async def logout(request: Request, principal: Principal) -> Response:
        session = ctx.signer.check(request.cookies.get(SESSION_COOKIE))
        if session is not None:  # a copy of this cookie is refused from now on
            ctx.revoked.add(session.nonce, session.issued + ctx.signer.max_age_s)
        log.info("logout", user=principal.name)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", guard(ctx, ctx.roles[0], api=False)(logout), methods=["POST"]),
    ]


def _login_form(ctx: WebContext, request: Request, nonce: str, *, error: str | None, status: int) -> Response:
    nxt = _safe_next(request.query_params.get("next"), ctx.home)
    response = ctx.render("login.html", None, status, csrf=ctx.signer.csrf(nonce), next=nxt, error=error)
    response.set_cookie(PRELOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies)  # fmt: skip
    return response


class SecurityHeaders:
    """Adds the headers every response must carry (CSP without inline code, no framing, no sniffing)."""

    HEADERS = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.extra = [(b"strict-transport-security", b"max-age=31536000")] if hsts else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS, *self.extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(ctx: WebContext, routes: Sequence[BaseRoute], static: dict[str, Path]) -> ASGIApp:
    """The application: login/logout, the given routes, ``/static/{name}`` for each static folder."""
    mounts: list[BaseRoute] = [
        Mount(f"/static/{n}", StaticFiles(directory=p), name=n) for n, p in static.items()
    ]
    mounts.append(Mount("/static/web", StaticFiles(directory=HERE / "static"), name="web"))
    app = Starlette(routes=[*login_routes(ctx), *routes, *mounts])
    return SecurityHeaders(app, hsts=ctx.secure_cookies)
