"""The rows the collector writes to its index, and the index's errors (shared by both backends)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError

SAMPLE_MARKS = "?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?"
EVENT_MARKS = "?,?,?,?,?,?,?,?,?,?"


class IndexDbError(AgentError):
    """The index database cannot be opened or written."""


class IndexFullError(IndexDbError):
    """SQLITE_FULL: the disk is full. Never corruption: the collector waits for space and retries."""


class IndexUnavailableError(IndexDbError):
    """The database server cannot be reached (restarting, network): the collector waits and retries."""


class IndexIntegrityError(IndexDbError):
    """A uniqueness or other constraint refused the write (two writers raced on one key)."""


@dataclass(frozen=True, slots=True)
class SampleRow:
    id: str
    ts: int
    device: str
    site: str
    line: str
    model: str
    version: str
    predicted: str
    score: float
    path: str
    bytes: int
    reasons: Sequence[str]
    meta: dict[str, Any]

    def values(self, received: int) -> tuple[Any, ...]:
        """The ``samples`` row as bound by :meth:`Index.record` (the collector rehearses the bind)."""
        return (
            self.id, self.ts, received, self.device, self.site, self.line, self.model, self.version,
            self.predicted, self.score, self.path, self.bytes, json.dumps(list(self.reasons)),
            json.dumps(self.meta, separators=(",", ":")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    ts: int
    device: str
    site: str
    line: str
    model: str | None
    version: str | None
    label: str
    score: float | None

    def values(self, received: int) -> tuple[Any, ...]:
        """The ``events`` row as bound by :meth:`Index.record`."""
        return (
            self.id, self.ts, received, self.device, self.site, self.line, self.model, self.version,
            self.label, self.score,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    topic: str
    reason: str
    path: str
