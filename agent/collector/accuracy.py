"""Measured line accuracy: what reviewed random samples say about each model version on each line.

Random-policy samples are an unbiased draw of a line's frames; once reviewers have
labeled them (``dataset label`` today, the review app's consensus later: both end in the
sample's ``label`` column) they measure the model's real accuracy and defect recall.
Each figure carries a Wilson 95 % interval, because a line may have a few dozen reviewed
frames. The running collector publishes them retained on
``{prefix}/{site}/_collector/accuracy/{line}`` and raises an alarm event on
``…/accuracy/{line}/alarm`` when an interval's upper bound falls below ``accuracy.target``:
even the most favourable reading of the evidence is below target, so retrain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from agent.collector.index import Index
from agent.config.observers import AccuracyConfig
from agent.metrics import wilson

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LineAccuracy:
    site: str
    line: str
    model: str
    version: str
    reviewed: int
    correct: int
    accuracy: float | None
    accuracy_ci95: tuple[float, float]
    defects: int  # reviewed frames whose label is a defect
    defects_flagged: int  # ...of which the model predicted some defect
    defect_recall: float | None
    defect_recall_ci95: tuple[float, float]
    below_target: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def _ci(k: int, n: int) -> tuple[float, float]:
    lo, hi = wilson(k, n)
    return round(lo, 4), round(hi, 4)


def line_accuracy(index: Index, cfg: AccuracyConfig, now: float | None = None) -> list[LineAccuracy]:
    """Per site, line, model and version: accuracy and defect recall of reviewed ``cfg.policy`` samples."""
    since = 0 if cfg.since_days is None else int(((now or time.time()) - cfg.since_days * 86400) * 1000)
    rows = index.query(
        "SELECT site, line, model, version, predicted, label FROM samples "
        "WHERE label IS NOT NULL AND ts >= ? AND reasons LIKE ? ORDER BY 1, 2, 3, 4",
        (since, f'%"{cfg.policy}"%'),
    )
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    ok = set(cfg.ok_labels)
    for site, line, model, version, predicted, label in rows:
        g = groups.setdefault((site, line, model, version), [0, 0, 0, 0])
        defect = label not in ok
        g[0] += 1
        g[1] += predicted == label
        g[2] += defect
        g[3] += defect and predicted not in ok
    out = []
    for (site, line, model, version), (n, correct, defects, flagged) in groups.items():
        ci = _ci(correct, n)
        below = cfg.target is not None and ci[1] < cfg.target
        out.append(
            LineAccuracy(
                site, line, model, version, n, correct, _ratio(correct, n), ci,
                defects, flagged, _ratio(flagged, defects), _ci(flagged, defects), below,
            )
        )  # fmt: skip
    return out


Publish = Callable[[str, bytes, int, bool], None]  # topic, payload, qos, retain


class AccuracyPublisher:
    """Recomputes the figures every ``interval_s``; publishes them per line; alarms on a change of state."""

    def __init__(self, cfg: AccuracyConfig, prefix: str, index: Index, publish: Publish) -> None:
        self.cfg = cfg
        self._prefix = prefix
        self._index = index
        self._publish = publish
        self._alarms: set[tuple[str, str, str, str]] = set()
        self._last = float("-inf")

    def due(self, now: float) -> bool:
        return self.cfg.enabled and now - self._last >= self.cfg.interval_s

    def tick(self, now: float | None = None) -> list[LineAccuracy]:
        now = time.time() if now is None else now
        self._last = now
        figures = line_accuracy(self._index, self.cfg, now)
        by_line: dict[tuple[str, str], list[LineAccuracy]] = {}
        for f in figures:
            by_line.setdefault((f.site, f.line), []).append(f)
        for (site, line), rows in by_line.items():
            doc = {"site": site, "line": line, "ts": int(now * 1000), "target": self.cfg.target,
                   "policy": self.cfg.policy, "models": [r.as_dict() for r in rows]}  # fmt: skip
            self._publish(self._topic(site, line), _json(doc), 1, True)
        self._alarm_changes(figures, now)
        return figures

    def _topic(self, site: str, line: str) -> str:
        return f"{self._prefix}/{site}/_collector/accuracy/{line}"

    def _alarm_changes(self, figures: Iterable[LineAccuracy], now: float) -> None:
        for f in figures:
            key = (f.site, f.line, f.model, f.version)
            if f.below_target == (key in self._alarms):
                continue
            state = "raised" if f.below_target else "cleared"
            (self._alarms.add if f.below_target else self._alarms.discard)(key)
            log.warning("line_accuracy_" + state, site=f.site, line=f.line, model=f.model, version=f.version,
                        upper=f.accuracy_ci95[1], target=self.cfg.target)  # fmt: skip
            doc = {
                "state": state,
                "ts": int(now * 1000),
                "message": f"measured accuracy of {f.model} {f.version} on line {f.line} {state}: "
                f"95 % upper bound {f.accuracy_ci95[1]} vs target {self.cfg.target}",
                "target": self.cfg.target,
                "figures": f.as_dict(),
            }
            self._publish(self._topic(f.site, f.line) + "/alarm", _json(doc), 1, False)


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def format_accuracy(figures: Iterable[dict[str, Any]]) -> list[str]:
    """Lines for ``collector stats``."""
    out = []
    for f in figures:
        lo, hi = f["accuracy_ci95"]
        recall = "-" if f["defect_recall"] is None else f"{f['defect_recall']:.3f}"
        flag = "  BELOW TARGET" if f["below_target"] else ""
        out.append(
            f"  {f['site']:<12} {f['line']:<12} {f['model']} {f['version']}: {f['reviewed']} reviewed, "
            f"accuracy {f['accuracy']:.3f} ({lo:.3f}-{hi:.3f}), defect recall {recall}{flag}"
        )
    return out
