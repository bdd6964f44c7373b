"""Read-only questions the review pages ask the index: the queue, one sample, its trail, exports.

The queue walks the ``review_queue`` index (state, priority, id) in order and stops after one
page, so its cost hardly grows with the index; paging is by keyset (``after=PRIORITY:ID``),
never OFFSET.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agent.collector.index import Index
from agent.collector.review.errors import ReviewError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FILTERS = (
    "site",
    "line",
    "device",
    "model",
    "version",
    "reason",
    "predicted",
    "date_from",
    "date_to",
    "flagged",
)
QUEUE_COLUMNS = (
    "r.id, r.ts, r.device, r.site, r.line, r.model, r.version, r.predicted, r.score, r.reasons, "
    "r.priority, r.flagged, r.missing"
)


@dataclass(frozen=True, slots=True)
class Filters:
    """The queue's filters; an empty value means "any"."""

    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, params: dict[str, str]) -> Filters:
        picked = []
        for key in FILTERS:
            value = (params.get(key) or "").strip()
            if not value:
                continue
            if key.startswith("date_") and not _DATE.match(value):
                raise ReviewError(f"{key}: {value!r} is not a date (YYYY-MM-DD)")
            picked.append((key, value))
        return cls(tuple(picked))

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for key, value in self.values:
            if key in ("site", "line", "device", "model", "version", "predicted"):
                clauses.append(f"r.{key} = ?")
                args.append(value)
            elif key == "reason":
                clauses.append("r.reasons LIKE ?")
                args.append(f'%"{value}"%')
            elif key == "flagged":
                clauses.append("r.flagged = ?")
                args.append(1 if value in ("1", "true", "yes") else 0)
            else:
                day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() * 1000
                clauses.append("r.ts >= ?" if key == "date_from" else "r.ts < ?")
                args.append(int(day) if key == "date_from" else int(day) + 86_400_000)
        return "".join(f" AND {c}" for c in clauses), args


def _mine_excluded(reviewer: str | None) -> tuple[str, list[Any]]:
    """Leave out the samples this reviewer already voted on (or marked unsure) this round."""
    if reviewer is None:
        return "", []
    return (
        " AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.sample_id = r.id AND v.reviewer = ? "
        "AND v.round = r.round AND v.kind <> 'retracted')",
        [reviewer],
    )


def queue(
    index: Index, reviewer: str | None, filters: Filters, *, after: str | None = None, limit: int = 50,
    state: str = "open",
) -> list[dict[str, Any]]:  # fmt: skip
    """One page of ``state`` samples, most uncertain first, that ``reviewer`` has not voted on."""
    where, args = filters.sql()
    mine, mine_args = _mine_excluded(reviewer if state == "open" else None)
    keyset, key_args = "", []
    if after:
        prio, _, last = after.partition(":")
        try:
            key_args = [float(prio), float(prio), last]
        except ValueError as exc:
            raise ReviewError(f"after: {after!r} is not PRIORITY:ID") from exc
        keyset = " AND (r.priority > ? OR (r.priority = ? AND r.id > ?))"
    rows = index.query(
        f"SELECT {QUEUE_COLUMNS} FROM review r WHERE r.state = ?"
        f"{where}{mine}{keyset} ORDER BY r.priority, r.id LIMIT ?",
        [state, *args, *mine_args, *key_args, limit],
    )
    return [_queue_item(r) for r in rows]


def _queue_item(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "ts", "device", "site", "line", "model", "version", "predicted", "score", "reasons",
            "priority", "flagged", "missing")  # fmt: skip
    item = dict(zip(keys, r, strict=True))
    item["reasons"] = json.loads(item["reasons"])
    item["flagged"], item["missing"] = bool(item["flagged"]), bool(item["missing"])
    item["cursor"] = f"{item['priority']}:{item['id']}"
    return item


COUNT_CAP = 500


def remaining(index: Index, reviewer: str | None, filters: Filters) -> int:
    """Open samples this reviewer has not voted on; with filters, counted up to COUNT_CAP only.

    Unfiltered it is exact and cheap (an index-only count minus this reviewer's own open votes);
    a filtered count would join every open sample, so it stops at COUNT_CAP ("500+ left").
    """
    if not filters.values:
        total = int(index.query("SELECT count(*) FROM review WHERE state = 'open'")[0][0])
        if reviewer is None:
            return total
        mine = index.query(
            "SELECT count(*) FROM votes v JOIN review r ON r.id = v.sample_id AND r.round = v.round "
            "WHERE v.reviewer = ? AND v.kind <> 'retracted' AND r.state = 'open'",
            [reviewer],
        )
        return total - int(mine[0][0])
    where, args = filters.sql()
    mine_sql, mine_args = _mine_excluded(reviewer)
    sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM review r WHERE r.state = 'open'{where}{mine_sql} "
        f"LIMIT {COUNT_CAP}) AS capped"
    )
    return int(index.query(sql, [*args, *mine_args])[0][0])


def sample(index: Index, sample_id: str) -> dict[str, Any] | None:
    rows = index.query(
        "SELECT s.id, s.ts, s.received, s.device, s.site, s.line, s.model, s.version, s.predicted, s.score, "
        "s.label, s.path, s.bytes, s.reasons, s.meta, r.state, r.round, r.priority, r.flagged, r.missing, "
        "r.unsure, r.decided_by, r.decided_at FROM samples s JOIN review r ON r.id = s.id WHERE s.id = ?",
        [sample_id],
    )
    if not rows:
        return None
    keys = ("id", "ts", "received", "device", "site", "line", "model", "version", "predicted", "score",
            "label", "path", "bytes", "reasons", "meta", "state", "round", "priority", "flagged", "missing",
            "unsure", "decided_by", "decided_at")  # fmt: skip
    row = dict(zip(keys, rows[0], strict=True))
    row["reasons"], row["meta"] = json.loads(row["reasons"]), json.loads(row["meta"])
    row["flagged"], row["missing"] = bool(row["flagged"]), bool(row["missing"])
    return row


def votes(index: Index, sample_id: str) -> list[dict[str, Any]]:
    rows = index.query(
        "SELECT reviewer, round, kind, label, ts, source FROM votes WHERE sample_id = ? ORDER BY round, ts",
        [sample_id],
    )
    return [dict(zip(("reviewer", "round", "kind", "label", "ts", "source"), r, strict=True)) for r in rows]


def my_vote(index: Index, sample_id: str, reviewer: str, rnd: int) -> dict[str, Any] | None:
    rows = index.query(
        "SELECT kind, label FROM votes WHERE sample_id = ? AND reviewer = ? AND round = ?",
        [sample_id, reviewer, rnd],
    )
    return {"kind": rows[0][0], "label": rows[0][1]} if rows else None


def audit(index: Index, sample_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    where, args = ("WHERE sample_id = ?", [sample_id]) if sample_id else ("", [])
    rows = index.query(
        f"SELECT seq, ts, sample_id, actor, action, label, previous, round, detail FROM audit {where} "
        "ORDER BY seq DESC LIMIT ?",
        [*args, limit],
    )
    keys = ("seq", "ts", "sample_id", "actor", "action", "label", "previous", "round", "detail")
    return [dict(zip(keys, r, strict=True)) for r in reversed(rows)]


def needs_adjudication(index: Index, limit: int = 200) -> list[dict[str, Any]]:
    """Disputed samples, then open ones somebody marked unsure."""
    rows = index.query(
        f"SELECT {QUEUE_COLUMNS}, r.state, r.unsure FROM review r "
        "WHERE r.state = 'disputed' OR (r.state = 'open' AND r.unsure > 0) "
        "ORDER BY CASE WHEN r.state = 'disputed' THEN 0 ELSE 1 END, r.priority, r.id LIMIT ?",
        [limit],
    )
    out = []
    for r in rows:
        item = _queue_item(r[:-2])
        item["state"], item["unsure"] = r[-2], r[-1]
        out.append(item)
    return out


def consensus(index: Index, model: str | None, version: str | None) -> list[dict[str, Any]]:
    """Every labeled sample with how it got its label (the export's provenance), by id."""
    sql = (
        "SELECT s.id, s.label, s.path, s.predicted, r.decided_by, r.decided_at, r.round FROM samples s "
        "JOIN review r ON r.id = s.id WHERE r.state = 'labeled' AND s.label IS NOT NULL"
    )
    args: list[Any] = []
    for column, value in (("model", model), ("version", version)):
        if value is not None:
            sql += f" AND s.{column} = ?"
            args.append(value)
    keys = ("id", "label", "path", "predicted", "decided_by", "decided_at", "round")
    rows = [dict(zip(keys, r, strict=True)) for r in index.query(sql + " ORDER BY s.id", args)]
    voters: dict[str, list[dict[str, Any]]] = {}
    for sid, reviewer, label, ts, source in index.query(
        "SELECT v.sample_id, v.reviewer, v.label, v.ts, v.source FROM votes v JOIN review r "
        "ON r.id = v.sample_id AND r.round = v.round WHERE r.state = 'labeled' AND v.kind = 'label' "
        "ORDER BY v.sample_id, v.ts"
    ):
        voters.setdefault(sid, []).append({"reviewer": reviewer, "label": label, "ts": ts, "source": source})
    for row in rows:
        row["votes"] = voters.get(row["id"], [])
        row["how"] = "consensus" if row["decided_by"] == "consensus" else "adjudicated"
    return rows
