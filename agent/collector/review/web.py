"""The review web app: pages (queue, sample, adjudication, overview) on top of the JSON API.

Built only when the collector config has ``web:`` (the ``web`` extra is checked first); it runs
in one thread beside the collector's, with its own index connections (:class:`ReviewStore`).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.collector.config import CollectorConfig
from agent.collector.review import queries
from agent.collector.review.api import api_routes, queue_page
from agent.collector.review.service import ReviewService
from agent.collector.review.stats import overview
from agent.collector.review.users import ROLES
from agent.collector.storage import open_storage
from agent.web.app import HttpError, Principal, WebContext, build_app, guard
from agent.web.auth import LoginLimiter, Signer, load_secret, revoked_beside
from agent.web.config import require_web
from agent.web.server import WebServer
from agent.web.users import Users

HERE = Path(__file__).parent
NAV = (("/review", "Review", "reviewer"), ("/overview", "Overview", "reviewer"),
       ("/adjudicate", "Adjudication", "admin"))  # fmt: skip
_OPTION_COLUMNS = ("site", "line", "device", "model", "version", "predicted")


class FilterOptions:
    """Distinct values for the filter menus, refreshed at most once a minute (a full scan each)."""

    def __init__(self, service: ReviewService, max_age_s: float = 60.0) -> None:
        self.service, self.max_age_s = service, max_age_s
        self._lock = threading.Lock()
        self._at, self._values = -1e9, {}  # type: float, dict[str, list[str]]

    def get(self) -> dict[str, list[str]]:
        with self._lock:
            if time.monotonic() - self._at > self.max_age_s:
                self._values = {
                    c: [
                        r[0] for r in self.service.index.query(f"SELECT DISTINCT {c} FROM samples ORDER BY 1")
                    ]
                    for c in _OPTION_COLUMNS
                }
                self._at = time.monotonic()
            return self._values


def page_routes(ctx: WebContext, service: ReviewService) -> list[BaseRoute]:
    reviewer, admin = guard(ctx, "reviewer", api=False), guard(ctx, "admin", api=False)
    options = FilterOptions(service)

    def review(request: Request, user: Principal) -> Response:
        params = dict(request.query_params)
        first = queue_page(service, user, {**params, "state": "unreviewed"})
        boot = {"queue": first, "preload": service.cfg.preload, "page_size": service.cfg.page_size}
        return ctx.render("review.html", user, filters=first["filters"], options=options.get(),
                          boot=json.dumps(boot).replace("<", "\\u003c"), reasons=REASONS)  # fmt: skip

    def sample(request: Request, user: Principal) -> Response:
        row = service.detail(request.path_params["id"], user.name, user.role == "admin")
        return ctx.render("sample.html", user, s=row, meta_json=json.dumps(row["meta"], indent=1))

    def adjudication(request: Request, user: Principal) -> Response:
        items = queries.needs_adjudication(service.index)
        for item in items:
            item["votes"] = queries.votes(service.index, item["id"])
            item["labels"] = service.sample(item["id"])["labels"]
        return ctx.render("adjudicate.html", user, items=items)

    async def decide(request: Request, user: Principal) -> Response:
        label = str((await request.form()).get("label") or "")
        if not label:
            raise HttpError(400, "choose a label")
        await run_in_threadpool(service.adjudicate, request.path_params["id"], user.name, label, "web")
        return RedirectResponse("/adjudicate", 303)

    async def reopen(request: Request, user: Principal) -> Response:
        sid = request.path_params["id"]
        reason = str((await request.form()).get("reason") or "")
        await run_in_threadpool(service.reopen, sid, user.name, reason)
        return RedirectResponse(f"/samples/{sid}", 303)

    def stats(request: Request, user: Principal) -> Response:
        return ctx.render("overview.html", user, o=overview(service.index))

    return [
        Route("/", lambda _r: RedirectResponse("/review", 303)),
        Route("/review", reviewer(review)),
        Route("/samples/{id}", reviewer(sample)),
        Route("/adjudicate", admin(adjudication)),
        Route("/adjudicate/{id}", admin(decide), methods=["POST"]),
        Route("/samples/{id}/reopen", admin(reopen), methods=["POST"]),
        Route("/overview", reviewer(stats)),
    ]


REASONS = ("low_confidence", "near_threshold", "classes", "random", "drift", "disagreement", "snapshot")


def build_review_app(cfg: CollectorConfig, service: ReviewService) -> Any:
    """The ASGI application of the review web app for this collector config."""
    web = cfg.web
    assert web is not None
    secret = cfg.resolve(web.secret_file) if web.secret_file else cfg.root / "web-secret.key"
    ctx = WebContext(
        users=Users(cfg.resolve(web.users_file), ROLES),
        signer=Signer(load_secret(secret), web.session_max_age_s),
        limiter=LoginLimiter(web.login_max_failures, web.login_window_s),
        title="Sample review",
        home="/review",
        template_dirs=[HERE / "templates"],
        secure_cookies=web.tls is not None,
        nav=NAV,
        revoked=revoked_beside(secret),
    )
    routes = [*page_routes(ctx, service), *api_routes(ctx, service)]
    return build_app(ctx, routes, {"review": HERE / "static"})


class ReviewServer:
    """The review app served by the collector: ``start()`` beside ingest, ``stop()`` on the way out."""

    def __init__(self, cfg: CollectorConfig) -> None:
        require_web()
        assert cfg.web is not None
        storage = open_storage(cfg)
        self.service = ReviewService.open(cfg.index_location, storage, cfg.review)
        tls = (
            (str(cfg.resolve(cfg.web.tls.cert_file)), str(cfg.resolve(cfg.web.tls.key_file)))
            if cfg.web.tls
            else None
        )
        self.server = WebServer(build_review_app(cfg, self.service), cfg.web, tls_files=tls)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ReviewServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.service.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
