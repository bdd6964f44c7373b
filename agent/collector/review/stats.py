"""The overview: what waits, what is labeled, who reviews how fast, and how often people agree.

Agreement between reviewers counts pairs of label votes on one sample (same round): per class, the
share of pairs involving that class in which both said it. Agreement with the model compares each
consensus label with the device's prediction: per true class, the share the model got right -
the first honest picture of how the model does on the line.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from agent.collector.index import Index


def overview(index: Index) -> dict[str, Any]:
    hour_ago = int(time.time() * 1000) - 3_600_000
    day_ago = hour_ago - 23 * 3_600_000
    return {
        "waiting": _rows(index, ("line", "model", "version", "count"),
                         "SELECT s.line, s.model, s.version, count(*) FROM review r "
                         "JOIN samples s ON s.id = r.id WHERE r.state = 'open' "
                         "GROUP BY s.line, s.model, s.version ORDER BY 1, 2, 3"),
        "states": dict(index.query("SELECT state, count(*) FROM review GROUP BY state")),
        "labeled": dict(index.query(
            "SELECT label, count(*) FROM review WHERE state = 'labeled' GROUP BY label ORDER BY label")),
        "reviewers": _rows(index, ("reviewer", "votes", "last_hour", "last_day", "unsure"),
                           "SELECT reviewer, sum(CASE WHEN kind = 'label' THEN 1 ELSE 0 END), "
                           "sum(CASE WHEN kind = 'label' AND ts >= ? THEN 1 ELSE 0 END), "
                           "sum(CASE WHEN kind = 'label' AND ts >= ? THEN 1 ELSE 0 END), "
                           "sum(CASE WHEN kind = 'unsure' THEN 1 ELSE 0 END) "
                           "FROM votes GROUP BY reviewer ORDER BY reviewer", [hour_ago, day_ago]),
        "reviewer_agreement": reviewer_agreement(index),
        "model_agreement": model_agreement(index),
    }  # fmt: skip


def _rows(
    index: Index, keys: tuple[str, ...], sql: str, args: list[Any] | None = None
) -> list[dict[str, Any]]:
    return [dict(zip(keys, r, strict=True)) for r in index.query(sql, args or [])]


def reviewer_agreement(index: Index) -> dict[str, Any]:
    pairs = index.query(
        "SELECT a.label, b.label, count(*) FROM votes a JOIN votes b ON a.sample_id = b.sample_id "
        "AND a.round = b.round AND a.reviewer < b.reviewer WHERE a.kind = 'label' AND b.kind = 'label' "
        "GROUP BY a.label, b.label"
    )
    total, agree = 0, 0
    involved: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for a, b, n in pairs:
        total += n
        agree += n if a == b else 0
        for label in {a, b}:
            involved[label] += n
            agreed[label] += n if a == b else 0
    return {
        "pairs": total,
        "rate": round(agree / total, 4) if total else None,
        "per_class": {
            c: {"pairs": involved[c], "rate": round(agreed[c] / involved[c], 4)} for c in sorted(involved)
        },
    }


def model_agreement(index: Index) -> dict[str, Any]:
    rows = index.query(
        "SELECT s.label, s.predicted, count(*) FROM review r JOIN samples s ON s.id = r.id "
        "WHERE r.state = 'labeled' GROUP BY s.label, s.predicted"
    )
    per: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for label, predicted, n in rows:
        per[label][0] += n
        per[label][1] += n if label == predicted else 0
    total, right = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
    return {
        "samples": total,
        "rate": round(right / total, 4) if total else None,
        "per_class": {c: {"samples": n, "rate": round(ok / n, 4)} for c, (n, ok) in sorted(per.items())},
    }
