"""The console's Starlette application: the live page, a defect's page, and the JSON API.

Built on :mod:`agent.web` (login, roles, CSRF, headers, templates). Roles: ``viewer`` sees,
``technician`` also acts (snapshot, trigger, reload, classify). Without a users file (allowed on
loopback only: the config refuses anything else) every visitor is the local technician, and
state-changing calls still need the page's CSRF token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.console.classify import classify
from agent.console.commands import ROLES
from agent.console.host import Host
from agent.console.live import LiveView
from agent.console.status import LiveStatus
from agent.console.upload import UploadError, decode_upload
from agent.web.app import HttpError, Principal, WebContext, build_app, guard

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
NAV = (("/", "Live", "viewer"),)
ACTIONS = {"snapshot": "snapshot", "trigger": "trigger", "reload": "reload-model"}
_SHOT_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
CLASSIFY_WAIT_S = 10.0
BOUNDARY = "frame"


class LocalContext(WebContext):
    """No users file (loopback only): everyone is the local technician; CSRF tokens still apply."""

    _nonce = secrets.token_urlsafe(16)

    def principal(self, request: Request) -> Principal | None:
        return Principal("local", ROLES[-1], self.signer.csrf(self._nonce))


def jpeg_response(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


class ConsoleApp:
    """The routes, over the agent (``host``) and the console's live view."""

    def __init__(self, ctx: WebContext, host: Host, view: LiveView) -> None:
        self.ctx, self.host, self.view = ctx, host, view
        self.status = LiveStatus(host, view)
        self.viewer = guard(ctx, "viewer", api=False)
        self.api = guard(ctx, "viewer", api=True)
        self.act = guard(ctx, "technician", api=True)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.viewer(self.live_page)),
            Route("/defects/{id}", self.viewer(self.defect_page)),
            Route("/api/session", self.api(self.session)),
            Route("/api/status", self.api(self.status_doc)),
            Route("/api/live", self.api(self.live_doc)),
            Route("/api/frame.jpg", self.api(self.frame)),
            Route("/api/stream.mjpg", self.api(self.stream)),
            Route("/api/defects", self.api(self.defects)),
            Route("/api/defects/{id}/{kind}", self.api(self.defect_image)),
            Route("/api/classify", self.act(self.classify), methods=["POST"]),
            Route("/api/actions/{name}", self.act(self.action), methods=["POST"]),
            Route("/api/focus/reset", self.act(self.focus_reset), methods=["POST"]),
        ]

    # -- pages --------------------------------------------------------------------------
    def live_page(self, request: Request, user: Principal) -> Response:
        self.view.want()
        model = self.host.slot.model
        return self.ctx.render(
            "live.html", user, model=model.summary, task=model.package.manifest.task,
            device=self.host.cfg.device, mode=self.host.cfg.camera.mode, fps=self.view.cfg.preview_fps,
            can_act=self.ctx.allows(user.role, "technician"), defects=list(self.view.defects)[:12],
        )  # fmt: skip

    def defect_page(self, request: Request, user: Principal) -> Response:
        shot = self.view.defect(request.path_params["id"])
        if shot is None:
            raise HttpError(404, "no such defect in memory (only the last ones are kept)")
        return self.ctx.render("defect.html", user, shot=shot)

    # -- JSON API -------------------------------------------------------------------------
    def session(self, request: Request, user: Principal) -> Response:
        return JSONResponse({"user": user.name, "role": user.role, "csrf": user.csrf})

    def status_doc(self, request: Request, user: Principal) -> Response:
        self.view.want()
        return JSONResponse({**(self.host.health.last or {}), "console": self.status.doc()})

    def live_doc(self, request: Request, user: Principal) -> Response:
        self.view.want()
        return JSONResponse(self.status.doc(), headers={"Cache-Control": "no-store"})

    def frame(self, request: Request, user: Principal) -> Response:
        self.view.want()
        picture = self.view.picture or self.view.wait_picture(0, 3.0)
        if picture is None:
            raise HttpError(503, "no frame inspected yet")
        return jpeg_response(picture.raw if request.query_params.get("raw") == "1" else picture.annotated)

    async def stream(self, request: Request, user: Principal) -> Response:
        if not self.view.viewers.acquire():
            log.warning("console_viewer_refused", user=user.name, limit=self.view.viewers.limit)
            raise HttpError(503, f"{self.view.viewers.limit} live streams are open already; try later")
        log.info("console_viewer_joined", user=user.name, viewers=self.view.viewers.count)
        return StreamingResponse(
            self._mjpeg(user.name), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip

    async def _mjpeg(self, user: str) -> AsyncIterator[bytes]:
        """One viewer's stream; the viewer slot is freed however it ends (a closed tab included)."""
        period, seq = 1.0 / self.view.cfg.preview_fps, 0
        try:
            while not self.view.closing:
                picture = self.view.picture
                if picture is None or picture.seq == seq:
                    await asyncio.sleep(period / 2)
                    continue
                seq = picture.seq
                yield _part(picture.annotated)
        finally:
            self.view.viewers.release()
            log.info("console_viewer_left", user=user, viewers=self.view.viewers.count)

    def defects(self, request: Request, user: Principal) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise HttpError(400, "limit must be a whole number from 1 to 1000")
        shots = list(self.view.defects)[: int(raw)]
        return JSONResponse({"defects": [s.summary() for s in shots], "kept": self.view.defects.maxlen})

    def defect_image(self, request: Request, user: Principal) -> Response:
        shot_id, kind = request.path_params["id"], request.path_params["kind"]
        shot = self.view.defect(shot_id) if _SHOT_ID.match(shot_id) else None
        if shot is None or kind not in ("thumb.jpg", "frame.jpg"):
            raise HttpError(404, "no such defect image")
        return jpeg_response(shot.thumb if kind == "thumb.jpg" else shot.image)

    async def classify(self, request: Request, user: Principal) -> Response:
        limit = self.view.cfg.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise HttpError(413, f"the body is larger than {limit} bytes (web.max_upload_bytes)")
        body = await _read_limited(request, limit)
        queued = time.monotonic()
        try:
            image = await run_in_threadpool(decode_upload, body, self.view.cfg.max_upload_pixels)
        except UploadError as exc:
            log.warning("console_classify_refused", user=user.name, error=str(exc))
            raise HttpError(exc.status, str(exc)) from exc
        cfg, pipeline = self.host.cfg, self.host.pipeline
        try:
            payload = await run_in_threadpool(
                pipeline.between_frames, lambda m: classify(cfg, m, image, queued), CLASSIFY_WAIT_S
            )
        except TimeoutError as exc:
            raise HttpError(503, f"the inference thread had no free slot in {CLASSIFY_WAIT_S:.0f} s") from exc
        log.info("console_classify", user=user.name, label=payload["label"], score=payload["score"])
        return JSONResponse(payload)

    def action(self, request: Request, user: Principal) -> Response:
        name = request.path_params["name"]
        command = ACTIONS.get(name)
        if command is None:
            raise HttpError(404, f"no action {name!r} (actions: {', '.join(ACTIONS)})")
        reply = self.host.router.handle(command, b"{}")
        log.info("console_action", user=user.name, action=name, ok=reply["ok"], error=reply.get("error"))
        return JSONResponse(reply, 200 if reply["ok"] else 409)

    def focus_reset(self, request: Request, user: Principal) -> Response:
        self.view.setup.reset_focus()
        log.info("console_action", user=user.name, action="focus_reset", ok=True)
        return JSONResponse({"ok": True})


def _part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` (a chunked upload has no length to check)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes (web.max_upload_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def build_console_app(ctx: WebContext, host: Host, view: LiveView) -> Any:
    app = ConsoleApp(ctx, host, view)
    return build_app(ctx, app.routes(), {"console": HERE / "static"})
