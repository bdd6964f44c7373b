"""The review tables of the collector index, and the queue priority of a new sample.

Portable SQL (SQLite today, PostgreSQL next): no AUTOINCREMENT, ``ON CONFLICT`` instead of
``INSERT OR IGNORE``. ``votes`` has one row per (sample, reviewer, round), enforced by its
primary key, so two requests of one reviewer can never both count. Nothing is ever deleted:
an undo turns a vote into ``kind='retracted'``, and ``audit`` keeps every step with the value
it replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS review (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, round INTEGER NOT NULL, priority REAL NOT NULL,
    flagged INTEGER NOT NULL, missing INTEGER NOT NULL DEFAULT 0, unsure INTEGER NOT NULL DEFAULT 0,
    label TEXT, decided_by TEXT, decided_at INTEGER
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


def review_rows(
    samples: Iterable[tuple[str, Mapping[str, Any] | None, float, Sequence[str]]],
) -> list[tuple[str, float, int]]:
    """(id, priority, flagged) for the review table, from (id, scores, score, reasons)."""
    return [
        (sid, priority(scores, score), int(bool(FLAG_REASONS & set(reasons))))
        for sid, scores, score, reasons in samples
    ]
