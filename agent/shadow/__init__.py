"""Shadow runs: a candidate model beside the active one on the same live frames (see docs/models.md).

``build_shadows`` is what the composition root calls: a list with one :class:`ShadowSlot` when
``model.shadow`` is set or ``model.path`` is a store's ``current`` (whose ``shadow`` link may
name one now or after a reload), empty otherwise, so the root adds it to the observers without
a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.config.schema import AgentConfig
from agent.events import EventSink
from agent.model.loaded import LoadedModel
from agent.model.store import CURRENT
from agent.protocol.payloads import encode, envelope
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink
from agent.shadow.runner import Offer, ShadowRunner
from agent.shadow.slot import ShadowSlot, shadow_path

__all__ = ["ShadowRunner", "ShadowSlot", "build_shadows"]


def build_shadows(
    cfg: AgentConfig,
    *,
    load: Callable[[str], LoadedModel],
    busy: Callable[[], bool],
    budget_ms: Callable[[], float],
    sink: Sink,
    topics: Topics,
    emit: EventSink,
    offer: Sequence[Offer] = (),
) -> list[ShadowSlot]:
    configured = cfg.resolve(cfg.model.shadow) if cfg.model.shadow is not None else None
    active = cfg.resolve(cfg.model.path)
    if configured is None and active.name != CURRENT:
        return []

    def publish(doc: dict[str, Any]) -> None:
        """The window summary, retained on {root}/shadow (the latest is what a dashboard wants)."""
        payload = encode({**envelope(cfg.device), **doc})
        sink.publish(topics.shadow, payload, qos=cfg.mqtt.qos, priority=Priority.RESULT, retain=True)

    def start(path: Path) -> ShadowRunner:
        return ShadowRunner(
            cfg.shadow,
            path=path,
            load=load,
            busy=busy,
            budget_ms=budget_ms,
            publish=publish,
            emit=emit,
            offer=offer,
        )

    return [ShadowSlot(lambda: shadow_path(configured, active), start)]
