"""The device's remote commands (``{root}/cmd/{name}``), registered on the MQTT command router.

Each handler receives validated JSON arguments and returns the reply's ``result``;
a :class:`CommandError` becomes an error reply. Handlers run on the router's worker
thread, never on the network thread.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError, CommandError
from agent.publish import CommandRouter, confine

if TYPE_CHECKING:
    from agent.app import Agent

RELOAD_WAIT_MAX_S = 120.0


def register_commands(router: CommandRouter, agent: Agent) -> None:
    router.register(
        "reload-model",
        lambda args: reload_model(agent, args),
        {"required": {}, "optional": {"path": str, "wait_s": (int, float)}},
    )
    router.register(
        "trigger",
        lambda args: trigger(agent, args),
        {"required": {}, "optional": {"timeout_s": (int, float)}},
    )
    router.register(
        "status",
        lambda args: {
            **agent.status(),
            **agent.supervisor.health(),
            "counters": agent.pipeline.counters.snapshot(),
        },
    )


def reload_model(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Load a package (default: the configured path, re-resolved) beside the running one and swap to it.

    A named path must lie inside ``model.store``; anything else is refused before a file is touched.
    """
    path: str | None = None
    if "path" in args:
        store = agent.cfg.model.store
        if store is None:
            raise CommandError("reload-model with a path needs model.store in the device config")
        path = str(confine(args["path"], Path(agent.cfg.resolve(store))))
    future = agent.request_reload(path)
    wait = min(float(args.get("wait_s", 0)), RELOAD_WAIT_MAX_S)
    if wait <= 0:
        return {"state": "loading"}
    try:
        return future.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        return {"state": "loading", "note": f"no outcome within {wait:.0f} s; see the model_swap event"}


def trigger(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    if agent.cfg.camera.mode != "trigger":
        raise CommandError("the camera is not in trigger mode (camera.mode: trigger)")
    timeout = float(args.get("timeout_s", 5.0))
    try:
        return agent.pipeline.trigger(timeout)
    except concurrent.futures.TimeoutError as exc:
        raise CommandError(f"no result within {timeout:.1f} s") from exc
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
