"""The review tables of the collector index, and the queue priority of a new sample.

Portable SQL (SQLite today, PostgreSQL next): no AUTOINCREMENT, ``ON CONFLICT`` instead of
``INSERT OR IGNORE``. ``review`` repeats the columns the queue filters on (site … reasons), so
the queue and its counts read one table. ``votes`` has one row per (sample, reviewer, round), enforced by its
primary key, so two requests of one reviewer can never both count. Nothing is ever deleted:
an undo turns a vote into ``kind='retracted'``, and ``audit`` keeps every step with the value
it replaced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.collector.index import SampleRow

REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS review (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, round INTEGER NOT NULL, priority REAL NOT NULL,
    flagged INTEGER NOT NULL, missing INTEGER NOT NULL DEFAULT 0, unsure INTEGER NOT NULL DEFAULT 0,
    label TEXT, decided_by TEXT, decided_at INTEGER,
    ts INTEGER NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL, device TEXT NOT NULL, model TEXT NOT NULL,
    version TEXT NOT NULL, predicted TEXT NOT NULL, score REAL NOT NULL, reasons TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_queue ON review (state, priority, id);
CREATE TABLE IF NOT EXISTS votes (
    sample_id TEXT NOT NULL, reviewer TEXT NOT NULL, round INTEGER NOT NULL, kind TEXT NOT NULL,
    label TEXT, ts INTEGER NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (sample_id, reviewer, round)
);
CREATE INDEX IF NOT EXISTS votes_reviewer ON votes (reviewer, ts);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, sample_id TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, label TEXT, previous TEXT, round INTEGER NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_sample ON audit (sample_id, seq);
"""

# Sampling reasons that mark a frame as especially worth a look (drift; model disagreement).
FLAG_REASONS = frozenset({"drift", "disagreement", "shadow"})


def priority(scores: Mapping[str, Any] | None, score: float) -> float:
    """Top-1 minus top-2 score: the smaller, the more a human label is worth (first in the queue).

    With a single score (or none), the top-1 confidence itself.
    """
    values = sorted((float(v) for v in (scores or {}).values()), reverse=True)
    if len(values) >= 2:
        return round(values[0] - values[1], 6)
    return round(values[0] if values else score, 6)


REVIEW_COLUMNS = (
    "id, state, round, priority, flagged, ts, site, line, device, model, version, predicted, score, reasons"
)
INSERT_REVIEW = (
    f"INSERT INTO review ({REVIEW_COLUMNS}) VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING"
)


def review_row(s: SampleRow, state: str = "open") -> tuple[Any, ...]:
    """The review row of a newly stored sample (INSERT_REVIEW's parameters)."""
    flagged = int(bool(FLAG_REASONS & set(s.reasons)))
    return (s.id, state, priority(s.meta.get("scores"), s.score), flagged, s.ts, s.site, s.line, s.device,
            s.model, s.version, s.predicted, s.score, json.dumps(list(s.reasons)))  # fmt: skip
