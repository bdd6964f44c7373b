"""The value types every part of publishing shares: priorities and outgoing messages."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol


class Priority(IntEnum):
    """What the outbox gives up first when it is full: the lowest value goes first."""

    SAMPLE = 0
    RESULT = 1
    EVENT = 2
    DEFECT = 3

    @property
    def label(self) -> str:
        """Lower-case name used as a key in stats and health."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Message:
    """One outgoing message, as accepted by ``Publisher.publish`` and stored by the outbox."""

    topic: str
    payload: bytes
    qos: int = 1
    priority: Priority = Priority.EVENT
    retain: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    ts: float = field(default_factory=time.time)  # when it was accepted; drives age expiry

    @property
    def size(self) -> int:
        """Bytes the message costs the outbox (payload, topic and properties)."""
        props = sum(len(k) + len(v) for k, v in self.user_properties) + len(self.content_type or "")
        return len(self.payload) + len(self.topic) + props


class Sink(Protocol):
    """What the rest of the agent needs from a publisher; ``Publisher`` is the MQTT one."""

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        priority: Priority,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> None: ...

    @property
    def connected(self) -> bool: ...
