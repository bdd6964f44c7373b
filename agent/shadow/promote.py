"""Promote the shadow: the running agent hot-swaps to the shadow's package and keeps it.

The swap is the model slot's (loaded beside the running model, taken between two frames,
watched and rolled back on errors or overrun). Only once the new model passed its first
frames is the package link (``model.path``) pointed at it, through the store when it is a
store's ``current``, so a restart keeps the promoted model and a rolled-back one leaves no trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import structlog

from agent.errors import AgentError, CommandError
from agent.shadow.slot import ShadowSlot

log = structlog.get_logger(__name__)

Request = Callable[[str], "Future[dict[str, Any]]"]
LinkRestorer = Callable[[Path, Path], None]


def promote(
    runners: Sequence[ShadowSlot], request: Request, link: Path, restore_link: LinkRestorer
) -> Future[dict[str, Any]]:
    """Swap to the shadow's package; the future gets the slot's outcome (``state`` active, rolled_back…).

    Raises CommandError when there is no shadow or it is not fit to promote (failed, too slow).
    """
    if not runners:
        raise CommandError("no shadow model: set model.shadow in the device config, or run store shadow")
    try:
        root = runners[0].promotable()
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    log.info("shadow_promotion_requested", path=str(root))
    swapped = request(str(root))
    outcome: Future[dict[str, Any]] = Future()
    # The swap's outcome is set on the publish thread; keeping the link (locked, fsynced) is not its
    # job, so it happens on a thread of its own, and the caller hears the outcome once it is done.
    swapped.add_done_callback(
        lambda done: threading.Thread(
            target=_keep, args=(done, outcome, link, root, restore_link), name="promote", daemon=True
        ).start()
    )
    return outcome


def _keep(
    done: Future[dict[str, Any]],
    outcome: Future[dict[str, Any]],
    link: Path,
    root: Path,
    restore_link: LinkRestorer,
) -> None:
    """After a passed swap: point the package link at the promoted package (a restart keeps it).

    The outcome gets ``kept``: whether ``model.path`` now names the promoted package."""
    result = dict(done.result())
    if result.get("state") == "active" and link.is_symlink() and link.resolve() != root.resolve():
        try:
            restore_link(link, root.resolve())
            log.info("shadow_promoted", link=str(link), path=str(root))
        except (AgentError, OSError) as exc:
            log.error("shadow_promotion_not_kept", link=str(link), path=str(root), error=str(exc))
    result["kept"] = link.resolve() == root.resolve()
    outcome.set_result(result)
