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
from agent.shadow.runner import ShadowRunner

log = structlog.get_logger(__name__)

Request = Callable[[str], "Future[dict[str, Any]]"]
LinkRestorer = Callable[[Path, Path], None]


def promote(
    runners: Sequence[ShadowRunner], request: Request, link: Path, restore_link: LinkRestorer
) -> Future[dict[str, Any]]:
    """Swap to the shadow's package; the future gets the slot's outcome (``state`` active, rolled_back…).

    Raises CommandError when there is no shadow or it is not fit to promote (failed, too slow).
    """
    if not runners:
        raise CommandError("no shadow model: set model.shadow in the device config")
    try:
        root = runners[0].promotable()
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    log.info("shadow_promotion_requested", path=str(root))
    future = request(str(root))
    # The outcome is set on the publish thread; the store's link (locked, fsynced) is not its job.
    future.add_done_callback(
        lambda done: threading.Thread(
            target=_keep, args=(done, link, root, restore_link), name="promote", daemon=True
        ).start()
    )
    return future


def _keep(done: Future[dict[str, Any]], link: Path, root: Path, restore_link: LinkRestorer) -> None:
    """After a passed swap: point the package link at the promoted package (a restart keeps it)."""
    outcome = done.result()
    if outcome.get("state") != "active" or not link.is_symlink() or link.resolve() == root.resolve():
        return
    try:
        restore_link(link, root.resolve())
    except (AgentError, OSError) as exc:
        log.error("shadow_promotion_not_kept", link=str(link), path=str(root), error=str(exc))
        return
    log.info("shadow_promoted", link=str(link), path=str(root))
