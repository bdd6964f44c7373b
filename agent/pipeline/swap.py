"""Zero-downtime model swap with automatic rollback.

A new model is loaded and warmed on a loader thread beside the running one; the
inference thread takes it between two frames (no frame dropped, every later
result carries the new version). The first ``rollback_frames`` results on the new
model are watched: an error, a NaN, or a sustained overrun switches back to the
old model, points the package link (``…/current``) back at it, and reports.
The outcome goes to ``{state.dir}/model-state.json`` (read by deploy/flash-model)
and to an MQTT event.

One load at a time: a request for the package already loading joins it (same future),
a request for another one, or one within ``RELOAD_MIN_INTERVAL_S`` of the last load,
is refused with :class:`ReloadBusy`. A flood of reload commands (or SIGHUPs) therefore
costs one loader thread and one model's memory, never inspection time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import structlog

from agent import events, fsutil
from agent.errors import AgentError
from agent.events import EventSink, ModelState, Severity
from agent.log import bind
from agent.model import state as model_state
from agent.model.loaded import LoadedModel
from agent.protocol.payloads import ModelSummary, same_model

log = structlog.get_logger(__name__)

Loader = Callable[[str], LoadedModel]
RELOAD_MIN_INTERVAL_S = 5.0  # between the starts of two loads


class ReloadBusy(AgentError):
    """A reload is refused for now: one is loading, or the last one started too recently."""


# Points the package link (``model.path``) back at a package root after a failed swap; the
# composition root passes the model store's, which also keeps the store's history right.
LinkRestorer = Callable[[Path, Path], None]


class ModelSlot:
    """Owns the running model; swaps in new ones and rolls back failing ones."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        loader: Loader,
        model_path: Path,
        state_file: Path,
        emit: EventSink,
        watch_frames: int,
        overrun_ratio: float,
        restore_link: LinkRestorer = fsutil.replace_symlink,
    ) -> None:
        self.model = model
        self._loader = loader
        self._restore = restore_link
        self._link = model_path if model_path.is_symlink() else None
        self._default_path = str(model_path)
        self._state_file = state_file
        self._emit = emit
        self._watch_frames = watch_frames
        self._overrun_ratio = overrun_ratio
        self._lock = threading.Lock()
        self._pending: tuple[LoadedModel, Future[dict[str, Any]]] | None = None
        self._loading: tuple[str, Future[dict[str, Any]]] | None = None  # the one load in progress
        self._last_load = -RELOAD_MIN_INTERVAL_S
        self._watch: _Watch | None = None
        self._fallback: LoadedModel | None = None
        self._primary = model  # the model the fallback policy returns to (changes with real swaps only)
        self.swaps = 0
        self._write_state("active", model, previous=None, reason="started")

    # -- requests (any thread) -------------------------------------------------------
    def request(self, path: str | None = None) -> Future[dict[str, Any]]:
        """Load ``path`` (default: the configured path, re-resolved) in the background and swap to it.

        Joins a load of the same path in progress; :class:`ReloadBusy` for another path while
        one loads, or within ``RELOAD_MIN_INTERVAL_S`` of the last load's start.
        """
        target = path or self._default_path
        with self._lock:
            if self._loading is not None:
                loading, future = self._loading
                if loading == target:
                    return future
                raise ReloadBusy(f"busy: a model is already loading ({loading})")
            now = time.monotonic()
            wait = self._last_load + RELOAD_MIN_INTERVAL_S - now
            if wait > 0:
                raise ReloadBusy(
                    f"busy: a model was loaded {now - self._last_load:.1f} s ago; retry in {wait:.1f} s"
                )
            future = Future()
            self._loading, self._last_load = (target, future), now
        threading.Thread(target=self._load, args=(target, future), name="model-loader", daemon=True).start()
        return future

    def set_fallback(self, model: LoadedModel | None) -> None:
        self._fallback = model

    def use_fallback(self, on: bool) -> None:
        """Overrun policy: run the fallback model (True) or go back to the primary (False)."""
        if self._fallback is None:
            return
        with self._lock:
            self._pending = (self._fallback if on else self._primary, _done_future())

    def _load(self, path: str, future: Future[dict[str, Any]]) -> None:
        try:
            new = self._loader(path)
        except AgentError as exc:
            self._loaded()
            log.error("model_reload_refused", path=path, reason=str(exc))
            self._restore_link(self.model)
            outcome = self._write_state("failed", self.model, previous=None, reason=str(exc))
            self._emit(
                events.model_swap(
                    Severity.ERROR, f"new model refused, still running {self.model.version}: {exc}", outcome
                )
            )
            future.set_result(dict(outcome))
            return
        except BaseException as exc:  # a loader bug: the next reload must not be "busy" for ever
            self._loaded()
            future.set_exception(exc)
            raise
        with self._lock:
            if self._pending is not None:
                self._pending[1].set_result({"state": "superseded"})
            self._pending = (new, future)
            self._loading = None
        log.info("model_ready_for_swap", name=new.name, version=new.version)

    def _loaded(self) -> None:
        with self._lock:
            self._loading = None

    def replace_hung(self, model: LoadedModel) -> None:
        """A fresh instance of the running model for a restarted inference thread.

        The hung thread keeps the old instance; its late result is discarded.
        """
        with self._lock:
            if self._primary is self.model:
                self._primary = model
            self.model = model

    # -- inference thread ------------------------------------------------------------
    def take(self) -> LoadedModel:
        """The model for the next frame; applies a pending swap between two frames."""
        if self._pending is None:
            return self.model
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return self.model
        new, future = pending
        old, self.model = self.model, new
        self.swaps += 1
        bind(model=new.name, model_version=new.version)
        if future.done():  # fallback switches are not watched
            return new
        self._primary = new
        self._watch = _Watch(new, old, future, self._watch_frames, self._overrun_ratio)
        log.info("model_swapped", old=old.version, new=new.version)
        return new

    # -- publish thread --------------------------------------------------------------
    def observe(self, model: ModelSummary, ok: bool, over_budget: bool) -> None:
        """One frame's outcome on ``model`` (by version and sha256; frames of other models are ignored)."""
        watch = self._watch
        if watch is None or not same_model(model, watch.new.summary):
            return
        verdict = watch.add(ok, over_budget)
        if verdict is None:
            return
        self._watch = None
        if verdict == "":
            outcome = self._write_state(
                "active", watch.new, previous=watch.old.version, reason="passed first frames"
            )
            self._emit(events.model_swap(Severity.INFO, f"model {watch.new.version} active", outcome))
            watch.old.close()
        else:
            outcome = self._roll_back(watch, verdict)
        watch.future.set_result(dict(outcome))

    def _roll_back(self, watch: _Watch, reason: str) -> ModelState:
        with self._lock:
            self._pending = (watch.old, _done_future())
            self._primary = watch.old
        self._restore_link(watch.old)
        outcome = self._write_state("rolled_back", watch.old, previous=watch.new.version, reason=reason)
        log.error("model_rolled_back", bad=watch.new.version, back_to=watch.old.version, reason=reason)
        self._emit(
            events.model_swap(
                Severity.ERROR,
                f"model {watch.new.version} rolled back to {watch.old.version}: {reason}",
                outcome,
            )
        )
        return outcome

    def _restore_link(self, model: LoadedModel) -> None:
        """Point the package link back at ``model`` (``restore_link``: through the store when it is one)."""
        link, root = self._link, model.package.root
        if link is None or link.resolve() == root:
            return
        self._restore(link, root)

    def _write_state(
        self, state: model_state.State, model: LoadedModel, *, previous: str | None, reason: str
    ) -> ModelState:
        record = model_state.ModelState(
            state, model.name, model.version, model.package.sha256, previous, reason
        )
        try:
            model_state.write(self._state_file, record)
        except OSError as exc:
            log.warning("model_state_not_written", path=str(self._state_file), error=str(exc))
        return record.as_dict()


class _Watch:
    """The first frames on a freshly swapped-in model."""

    def __init__(
        self, new: LoadedModel, old: LoadedModel, future: Future[dict[str, Any]], frames: int, ratio: float
    ):
        self.new, self.old, self.future = new, old, future
        self.frames, self.ratio = frames, ratio
        self.seen = self.over = 0

    def add(self, ok: bool, over_budget: bool) -> str | None:
        """None while watching; "" when passed; otherwise the reason for a rollback."""
        if not ok:
            return "inference failed on the new model (error or NaN/Inf output)"
        self.seen += 1
        self.over += over_budget
        if self.seen < self.frames:
            return None
        if self.over / self.seen > self.ratio:
            return f"{self.over} of its first {self.seen} frames over budget"
        return ""


def _done_future() -> Future[dict[str, Any]]:
    future: Future[dict[str, Any]] = Future()
    future.set_result({"state": "switched"})
    return future
