"""Helpers for testing code that publishes messages or raises events (in the spirit of ``structlog.testing``).

:class:`RecordingSink` stands where the MQTT publisher stands: it is a
:class:`agent.publish.Sink` (``publish``) and an :data:`agent.events.EventSink` (call it
with an :class:`~agent.events.Event`). It keeps what it was given, in order, so a test
asserts on what a real part really sent. The real publisher is tested against mosquitto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.events import Event, EventKind
from agent.publish import Priority


@dataclass(frozen=True, slots=True)
class Published:
    """One ``publish`` call, as given."""

    topic: str
    payload: bytes
    qos: int
    priority: Priority
    retain: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def json(self) -> Any:
        """The payload parsed as JSON (results, events, health, drift)."""
        return json.loads(self.payload)


class RecordingSink:
    """Records published messages and raised events; thread-safe (stages publish from their threads).

    ``fail`` makes ``publish`` raise that error, as a stopped publisher or a refused payload would.
    """

    def __init__(self) -> None:
        self.messages: list[Published] = []
        self.events: list[Event] = []
        self.fail: Exception | None = None
        self.connected = True
        self._lock = threading.Lock()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        priority: Priority,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Iterable[tuple[str, str]] = (),
    ) -> None:
        if self.fail is not None:
            raise self.fail
        message = Published(topic, payload, qos, priority, retain, content_type, tuple(user_properties))
        with self._lock:
            self.messages.append(message)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def on(self, suffix: str) -> list[Any]:
        """The JSON payloads published on topics ending in ``/suffix`` (``result``, ``drift``, …)."""
        with self._lock:
            return [m.json() for m in self.messages if m.topic.endswith("/" + suffix)]

    def of(self, kind: EventKind) -> list[Event]:
        """The events of one kind, in the order they were raised."""
        with self._lock:
            return [e for e in self.events if e.kind is kind]
