"""The JSON API: everything the review pages do, for scripts and the pages' own JavaScript.

    GET  /api/samples?state=unreviewed&order=uncertainty&line=…&after=…&limit=…
    GET  /api/samples/{id}            GET /api/samples/{id}/image
    POST /api/samples/{id}/votes      {"label": "scratch"} or {"unsure": true}
    POST /api/samples/{id}/votes/undo
    POST /api/samples/{id}/adjudication {"label": "scratch"}   (admin)
    POST /api/samples/{id}/reopen {"reason": "why"}   (admin: a new round of votes)
    GET  /api/adjudication (admin)    GET /api/stats

State-changing calls need the session cookie and the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agent.collector.review import queries
from agent.collector.review.errors import ReviewError
from agent.collector.review.queries import Filters
from agent.collector.review.service import ReviewService
from agent.collector.review.stats import overview
from agent.collector.review.store import Outcome
from agent.web.app import HttpError, Principal, WebContext, guard

STATES = {"unreviewed": "open", "open": "open", "disputed": "disputed", "labeled": "labeled"}


def queue_page(service: ReviewService, user: Principal, params: dict[str, str]) -> dict[str, Any]:
    """One page of the queue, for the API and for the review page's first paint."""
    state = params.get("state") or "unreviewed"
    if state not in STATES:
        raise ReviewError(f"state: {state!r} is not one of {', '.join(STATES)}")
    if (params.get("order") or "uncertainty") != "uncertainty":
        raise ReviewError("order: only 'uncertainty' is supported")
    try:
        limit = min(max(int(params.get("limit") or service.cfg.page_size), 1), 500)
    except ValueError as exc:
        raise ReviewError(f"limit: {params.get('limit')!r} is not a number") from exc
    filters = Filters.parse(params)
    reviewer = user.name if state == "unreviewed" else None
    items = service.queue(reviewer, filters, params.get("after"), limit, STATES[state])
    left = service.remaining(user.name, filters) if state == "unreviewed" else None
    return {
        "state": state,
        "filters": filters.as_dict(),
        "items": items,
        "next": items[-1]["cursor"] if len(items) == limit else None,
        "remaining": left,
        "remaining_capped": bool(filters.values) and left is not None and left >= queries.COUNT_CAP,
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        doc = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise HttpError(400, "the body must be JSON") from exc
    if not isinstance(doc, dict):
        raise HttpError(400, "the body must be a JSON object")
    return doc


def _outcome(outcome: Outcome, status: int = 200) -> JSONResponse:
    return JSONResponse({"id": outcome.sample_id, "state": outcome.state, "label": outcome.label}, status)


class Api:
    """The endpoints; each takes the request and the logged-in user (see agent.web.app.guard)."""

    def __init__(self, service: ReviewService) -> None:
        self.service = service

    def samples(self, request: Request, user: Principal) -> Response:
        return JSONResponse(queue_page(self.service, user, dict(request.query_params)))

    def sample(self, request: Request, user: Principal) -> Response:
        return JSONResponse(self.service.detail(request.path_params["id"], user.name, user.role == "admin"))

    def image(self, request: Request, user: Principal) -> Response:
        data = self.service.image(request.path_params["id"])
        # The bytes of one id never change (labeling moves the file, not its content): cache them.
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    async def vote(self, request: Request, user: Principal) -> Response:
        doc = await _body(request)
        label = doc.get("label")
        if doc.get("unsure") is True:
            label = None
        elif not isinstance(label, str) or not label:
            raise HttpError(400, 'give {"label": LABEL} or {"unsure": true}')
        sid = request.path_params["id"]
        return _outcome(await run_in_threadpool(self.service.vote, sid, user.name, label, "web"), 201)

    async def undo(self, request: Request, user: Principal) -> Response:
        return _outcome(await run_in_threadpool(self.service.retract, request.path_params["id"], user.name))

    async def adjudicate(self, request: Request, user: Principal) -> Response:
        label = (await _body(request)).get("label")
        if not isinstance(label, str) or not label:
            raise HttpError(400, 'give {"label": LABEL}')
        sid = request.path_params["id"]
        return _outcome(await run_in_threadpool(self.service.adjudicate, sid, user.name, label, "web"))

    async def reopen(self, request: Request, user: Principal) -> Response:
        reason = (await _body(request)).get("reason")
        if not isinstance(reason, str):
            raise HttpError(400, 'give {"reason": WHY}')
        sid = request.path_params["id"]
        return _outcome(await run_in_threadpool(self.service.reopen, sid, user.name, reason))

    def adjudication(self, request: Request, user: Principal) -> Response:
        items = queries.needs_adjudication(self.service.index)
        for item in items:
            item["votes"] = queries.votes(self.service.index, item["id"])
        return JSONResponse({"items": items})

    def stats(self, request: Request, user: Principal) -> Response:
        return JSONResponse(overview(self.service.index))


def api_routes(ctx: WebContext, service: ReviewService) -> list[BaseRoute]:
    reviewer, admin = guard(ctx, "reviewer", api=True), guard(ctx, "admin", api=True)
    api = Api(service)
    return [
        Route("/api/samples", reviewer(api.samples)),
        Route("/api/samples/{id}", reviewer(api.sample)),
        Route("/api/samples/{id}/image", reviewer(api.image)),
        Route("/api/samples/{id}/votes", reviewer(api.vote), methods=["POST"]),
        Route("/api/samples/{id}/votes/undo", reviewer(api.undo), methods=["POST"]),
        Route("/api/samples/{id}/adjudication", admin(api.adjudicate), methods=["POST"]),
        Route("/api/samples/{id}/reopen", admin(api.reopen), methods=["POST"]),
        Route("/api/adjudication", admin(api.adjudication)),
        Route("/api/stats", reviewer(api.stats)),
    ]
