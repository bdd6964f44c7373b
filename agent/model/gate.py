"""The release gate: business targets a challenger model must meet, and proof that it met them.

A gate file states the targets (docs/models.md, "Compare and gate"); ``model compare``
checks them and writes a report carrying both packages' manifest sha256.
:func:`verify_gate_report` is what a deploy step calls before flashing: the report must
say it passed, and must have been made for exactly the package being deployed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.loader import read_yaml
from agent.config.typed import build
from agent.errors import AgentError, ConfigError

DEFECT = "defect"  # in min_recall/min_precision: any defect class vs ok (the flagged decision)
Problems = list[tuple[str, str]]


class GateError(AgentError):
    """A gate report is missing, did not pass, or was made for another package."""


def _floors(values: Mapping[str, float], key: str) -> Problems:
    return [(f"{key}.{k}", "must be between 0 and 1") for k, v in values.items() if not 0.0 <= v <= 1.0]


@dataclass(frozen=True, slots=True)
class LineFloors:
    """Floors every line with at least ``min_samples`` frames must meet on its own."""

    min_accuracy: float | None = None
    min_recall: dict[str, float] = field(default_factory=dict)
    max_accuracy_drop: float | None = None  # champion minus challenger on that line
    min_samples: int = 20  # fewer frames: too few to judge a line (reported, not failed)

    def _check(self) -> Problems:
        problems = _floors(self.min_recall, "min_recall")
        if self.min_samples < 1:
            problems.append(("min_samples", "must be at least 1"))
        return problems


@dataclass(frozen=True, slots=True)
class Gate:
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None  # champion accuracy minus challenger accuracy, all frames
    min_recall: dict[str, float] = field(default_factory=dict)  # per class, or "defect"
    min_precision: dict[str, float] = field(default_factory=dict)
    min_f1: dict[str, float] = field(default_factory=dict)
    max_p99_ms: float | None = None  # challenger's per-frame latency (preprocess + invoke + postprocess)
    per_line: LineFloors | None = None

    def _check(self) -> Problems:
        problems = [*_floors(self.min_recall, "min_recall"), *_floors(self.min_precision, "min_precision")]
        problems += _floors(self.min_f1, "min_f1")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            problems.append(("max_p99_ms", "must be greater than 0"))
        return problems


def load_gate(path: Path) -> Gate:
    """Parse a gate file strictly: unknown keys and bad values are ConfigErrors with file:line."""
    doc = read_yaml(path)
    data = {} if doc.data is None else doc.data
    gate, problems = build(Gate, data, str(path), doc.line_of)
    if doc.problems or problems or gate is None:
        raise ConfigError(doc.problems + problems)
    return gate


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    value: float | None
    limit: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "limit": self.limit, "passed": self.passed}

    def describe(self) -> str:
        op = "<=" if "drop" in self.name or "max" in self.name else ">="
        shown = "not measured" if self.value is None else f"{self.value:g}"
        return f"{self.name}: {shown} (needs {op} {self.limit:g})"


def _at_least(name: str, value: float | None, limit: float) -> Criterion:
    return Criterion(name, value, limit, value is not None and value >= limit)


def _at_most(name: str, value: float | None, limit: float) -> Criterion:
    return Criterion(name, value, limit, value is not None and value <= limit)


def _class_figure(fig: Mapping[str, Any], label: str, key: str) -> float | None:
    if label == DEFECT and key in ("recall", "precision"):
        value = fig.get(f"defect_{key}")
    else:
        value = fig.get("per_class", {}).get(label, {}).get(key)
    return None if value is None else float(value)


def check_gate(gate: Gate, champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> list[Criterion]:
    """Every criterion of ``gate`` on the two models' figures (from :func:`agent.model.evaluate.figures`)."""
    out = []
    if gate.min_accuracy is not None:
        out.append(_at_least("accuracy", challenger["accuracy"], gate.min_accuracy))
    if gate.max_accuracy_drop is not None:
        drop = _drop(champion.get("accuracy"), challenger.get("accuracy"))
        out.append(_at_most("accuracy_drop", drop, gate.max_accuracy_drop))
    for key, floors in (("recall", gate.min_recall), ("precision", gate.min_precision), ("f1", gate.min_f1)):
        out += [
            _at_least(f"{key}.{label}", _class_figure(challenger, label, key), v)
            for label, v in floors.items()
        ]
    if gate.max_p99_ms is not None:
        out.append(_at_most("p99_ms", challenger["latency_ms"]["p99"], gate.max_p99_ms))
    if gate.per_line is not None:
        out += list(_line_criteria(gate.per_line, champion, challenger))
    return out


def _drop(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(before - after, 4)


def _line_criteria(
    floors: LineFloors, champion: Mapping[str, Any], challenger: Mapping[str, Any]
) -> Iterator[Criterion]:
    lines = challenger.get("by", {}).get("line", {})
    before = champion.get("by", {}).get("line", {})
    for line, fig in sorted(lines.items()):
        if fig["samples"] < floors.min_samples:
            continue
        if floors.min_accuracy is not None:
            yield _at_least(f"line[{line}].accuracy", fig["accuracy"], floors.min_accuracy)
        for label, v in floors.min_recall.items():
            value = fig["defect_recall"] if label == DEFECT else fig["recall"].get(label)
            yield _at_least(f"line[{line}].recall.{label}", value, v)
        if floors.max_accuracy_drop is not None:
            drop = _drop(before.get(line, {}).get("accuracy"), fig["accuracy"])
            yield _at_most(f"line[{line}].accuracy_drop", drop, floors.max_accuracy_drop)


def verify_gate_report(report: Path | Mapping[str, Any], package: Path) -> dict[str, Any]:
    """Raise GateError unless ``report`` passed and names ``package`` (a directory) as its challenger.

    The package is identified by the sha256 of its manifest.yaml, which pins every model
    file's sha256: a report made for another build, or a package edited after the gate,
    is refused. Returns the report.
    """
    from agent.model.evaluate import package_digest

    doc = _read_report(report)
    try:
        passed, wanted = doc["passed"], doc["challenger"]["sha256"]
    except (KeyError, TypeError) as exc:
        raise GateError(f"gate report: not a `model compare` report (missing {exc})") from exc
    try:
        actual = package_digest(package)
    except OSError as exc:
        raise GateError(f"{package}: cannot read manifest.yaml ({exc.strerror or exc})") from exc
    if actual != wanted:
        raise GateError(
            f"gate report was made for another package "
            f"(manifest sha256 {wanted[:12]}…, this one {actual[:12]}…)"
        )
    if passed is not True:
        failed = "; ".join(c["name"] for c in doc.get("gate", {}).get("failed", [])) or "see the report"
        raise GateError(f"gate report did not pass: {failed}")
    return doc


def _read_report(report: Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(report, Mapping):
        return dict(report)
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateError(f"{report}: cannot read the gate report ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise GateError(f"{report}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise GateError(f"{report}: not a `model compare` report")
    return doc
