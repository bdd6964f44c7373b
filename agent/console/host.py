"""What the console sees of the agent: a small protocol the composition root's ``Agent`` meets.

Attributes are read at request time, never at construction, so the console can be built
before the pipeline it watches (it is one of the pipeline's observers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.config.schema import AgentConfig
    from agent.health.report import HealthReporter
    from agent.pipeline.observers import Observers
    from agent.pipeline.runner import Pipeline
    from agent.pipeline.swap import ModelSlot
    from agent.publish import CommandRouter, Publisher


class Host(Protocol):
    cfg: AgentConfig
    camera_state: str
    pipeline: Pipeline
    slot: ModelSlot
    health: HealthReporter
    observers: Observers
    router: CommandRouter
    publisher: Publisher
