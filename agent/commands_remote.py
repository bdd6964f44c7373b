"""The device's remote commands (``{root}/cmd/{name}``), registered on the MQTT command router.

Each handler receives validated JSON arguments and returns the reply's ``result``;
a :class:`CommandError` becomes an error reply. Handlers run on the router's worker
thread, never on the network thread. They see the agent through :class:`Device`, the
few things a command may ask of it, so they can be tested (and the agent changed)
without the other.
"""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from agent.config import AgentConfig
from agent.errors import AgentError, CommandError
from agent.publish import CommandRouter, confine

RELOAD_WAIT_MAX_S = 120.0


class Device(Protocol):
    """What the remote commands need from the running agent (:class:`agent.app.Agent` has it)."""

    cfg: AgentConfig

    def request_reload(self, path: str | None = None) -> Future[dict[str, Any]]:
        """Load a package beside the running one and swap to it; the future gets the outcome."""
        ...

    def promote_shadow(self) -> Future[dict[str, Any]]:
        """Hot-swap to the shadow model's package and keep it; raises CommandError without a fit shadow."""
        ...

    def trigger(self, timeout: float, source: str = "mqtt") -> dict[str, Any]:
        """Inspect one frame now (trigger mode) and return its result payload.

        It goes through the line's trigger queue (agent/line/trigger.py) like a GPIO edge or the
        Modbus coil: counted as missed when refused, as overlapped when another is in flight, and
        its result carries a ``trigger`` tag (seq, ts, source ``mqtt``)."""
        ...

    def status_report(self) -> dict[str, Any]:
        """The status document with the supervisor's health and the pipeline counters."""
        ...


def register_commands(router: CommandRouter, device: Device) -> None:
    router.register(
        "reload-model",
        lambda args: reload_model(device, args),
        {"required": {}, "optional": {"path": str, "wait_s": (int, float)}},
    )
    router.register(
        "trigger",
        lambda args: trigger(device, args),
        {"required": {}, "optional": {"timeout_s": (int, float)}},
    )
    router.register("status", lambda args: device.status_report())
    router.register(
        "promote-shadow",
        lambda args: promote_shadow(device, args),
        {"required": {}, "optional": {"wait_s": (int, float)}},
    )


def reload_model(device: Device, args: dict[str, Any]) -> dict[str, Any]:
    """Load a package (default: the configured path, re-resolved) beside the running one and swap to it.

    A named path must lie inside ``model.store``; anything else is refused before a file is touched.
    Concurrent requests for the same package share one load; others are answered ``busy``.
    """
    path: str | None = None
    if "path" in args:
        store = device.cfg.model.store
        if store is None:
            raise CommandError("reload-model with a path needs model.store in the device config")
        path = str(confine(args["path"], Path(device.cfg.resolve(store))))
    try:
        future = device.request_reload(path)
    except AgentError as exc:  # ReloadBusy: one load at a time, and not too often
        raise CommandError(str(exc)) from exc
    return _swap_outcome(future, args)


def promote_shadow(device: Device, args: dict[str, Any]) -> dict[str, Any]:
    """Make the shadow model the active one through the hot swap (see agent/shadow/promote.py)."""
    future = device.promote_shadow()
    return _swap_outcome(future, args)


def _swap_outcome(future: Future[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    """The swap's outcome when it lands within ``wait_s`` (capped), else "loading" and where to look."""
    wait = min(float(args.get("wait_s", 0)), RELOAD_WAIT_MAX_S)
    if wait <= 0:
        return {"state": "loading"}
    try:
        return future.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        return {"state": "loading", "note": f"no outcome within {wait:.0f} s; see the model_swap event"}


def trigger(device: Device, args: dict[str, Any]) -> dict[str, Any]:
    if device.cfg.camera.mode != "trigger":
        raise CommandError("the camera is not in trigger mode (camera.mode: trigger)")
    timeout = float(args.get("timeout_s", 5.0))
    try:
        return device.trigger(timeout, "mqtt")
    except concurrent.futures.TimeoutError as exc:
        raise CommandError(f"no result within {timeout:.1f} s") from exc
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
