"""The technician's console on the device: live view with the result drawn, setup aids (focus,
exposure against the model's reference, clipping, the model's input region), recent defects,
actions and a JSON API (docs/console.md).

Lazy on purpose: :func:`build_consoles` imports nothing of the web stack unless ``web.listen``
is set, so an agent without a console never loads starlette, uvicorn or jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.config.schema import AgentConfig
from agent.observer import FrameObserver

if TYPE_CHECKING:
    from agent.console.host import Host


def build_consoles(cfg: AgentConfig, host: Host) -> list[FrameObserver]:
    """The console in a list (empty when ``web.listen`` is not set), for the observer list."""
    if cfg.web.listen is None:
        return []
    from agent.console.service import Console

    return [Console(cfg, host)]
