"""``collector stats``: what arrived over a period, per device, line and label, read from the index."""

from __future__ import annotations

import re
import time
from typing import Any

from agent.collector.accuracy import format_accuracy, line_accuracy
from agent.collector.index import Index
from agent.config.observers import AccuracyConfig
from agent.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """'90s', '30m', '1h', '7d', '2w' -> seconds; ConfigError (exit 2) otherwise."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--since: {text!r} is not a duration like 30m, 1h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _grouped(index: Index, table: str, label: str, since_ms: int, hours: float) -> list[dict[str, Any]]:
    rows = index.query(
        f"SELECT site, line, device, {label}, count(*) FROM {table} WHERE ts >= ? "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        (since_ms,),
    )
    return [
        {"site": s, "line": li, "device": d, "label": lab, "count": n, "per_hour": round(n / hours, 2)}
        for s, li, d, lab, n in rows
    ]


def stats_report(
    index: Index, since_s: float, now: float | None = None, accuracy: AccuracyConfig | None = None
) -> dict[str, Any]:
    """Counts and hourly rates of defect events and samples since ``since_s`` seconds ago,
    and the measured line accuracy (all reviewed samples, or ``accuracy.since_days``)."""
    now = time.time() if now is None else now
    since_ms = int((now - since_s) * 1000)
    hours = since_s / 3600.0
    quarantined = index.query("SELECT count(*) FROM quarantine WHERE received >= ?", (since_ms,))[0][0]
    return {
        "since_s": since_s,
        "defects": _grouped(index, "events", "label", since_ms, hours),
        "samples": _grouped(index, "samples", "predicted", since_ms, hours),
        "quarantined": quarantined,
        "accuracy": [f.as_dict() for f in line_accuracy(index, accuracy or AccuracyConfig(), now)],
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [f"since {report['since_s'] / 3600:.2f} h"]
    for kind in ("defects", "samples"):
        lines.append(f"{kind}:")
        header = f"  {'site':<12} {'line':<12} {'device':<16} {'label':<16} {'count':>7} {'per hour':>9}"
        lines.append(header)
        for r in report[kind]:
            lines.append(
                f"  {r['site']:<12} {r['line']:<12} {r['device']:<16} {r['label']:<16} "
                f"{r['count']:>7} {r['per_hour']:>9.2f}"
            )
        total = sum(r["count"] for r in report[kind])
        lines.append(f"  total {total}")
    lines.append(f"quarantined: {report['quarantined']}")
    lines.append("measured accuracy (reviewed random samples, 95 % Wilson interval):")
    lines += format_accuracy(report["accuracy"]) or ["  none reviewed yet"]
    return "\n".join(lines)
