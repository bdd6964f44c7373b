"""Shadow runs: a candidate model beside the active one on the same live frames (see docs/models.md).

``build_shadows`` is what the composition root calls: a list with the runner when
``model.shadow`` is set, empty otherwise, so the root adds it to the observers without a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agent.config.schema import AgentConfig
from agent.events import EventSink
from agent.model.loaded import LoadedModel
from agent.protocol.payloads import encode, envelope
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink
from agent.shadow.runner import Offer, ShadowRunner

__all__ = ["ShadowRunner", "build_shadows"]


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
) -> list[ShadowRunner]:
    if cfg.model.shadow is None:
        return []

    def publish(doc: dict[str, Any]) -> None:
        """The window summary, retained on {root}/shadow (the latest is what a dashboard wants)."""
        payload = encode({**envelope(cfg.device), **doc})
        sink.publish(topics.shadow, payload, qos=cfg.mqtt.qos, priority=Priority.RESULT, retain=True)

    runner = ShadowRunner(
        cfg.shadow,
        path=cfg.resolve(cfg.model.shadow),
        load=load,
        busy=busy,
        budget_ms=budget_ms,
        publish=publish,
        emit=emit,
        offer=offer,
    )
    return [runner]
