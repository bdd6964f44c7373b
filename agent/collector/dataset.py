"""The retraining dataset kept by the collector: labeling samples and exporting train/val/test splits.

Labeling is a review vote (agent/collector/review): once ``review.votes_required`` reviewers
agree, or an admin decides, ``…/unlabeled/{predicted}/{id}.jpg`` moves to
``…/labeled/{label}/{id}.jpg`` and the index keeps every step. Exports take only those consensus
labels, are stratified by label and deterministic for a seed: each label's ids are sorted,
shuffled with ``Random(f"{seed}/{label}")`` and cut by largest remainder, so no id ever lands in
two splits and the same index always gives the same export. Formats: ``imagefolder`` and ``csv``
here, ``coco``/``yolo`` and ``label-studio`` (the samples still to label, with the model's guess)
in :mod:`agent.collector.formats`; every one writes the split and ``provenance.jsonl``.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.collector.index import Index
from agent.collector.messages import safe_component
from agent.collector.review import queries
from agent.collector.review.errors import ReviewError
from agent.collector.review.service import ReviewService
from agent.errors import AgentError, ConfigError

SPLIT_NAMES = ("train", "val", "test")
FORMATS = ("imagefolder", "csv", "coco", "yolo", "label-studio")


@dataclass(frozen=True, slots=True)
class Split:
    """Percentages per split name, summing to 100."""

    parts: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, text: str) -> Split:
        """'70/15/15' (train/val/test) or '80/20' (train/val)."""
        try:
            values = [int(v) for v in text.split("/")]
        except ValueError:
            values = []
        if not 2 <= len(values) <= 3 or sum(values) != 100 or min(values) < 0:
            raise ConfigError(
                f"--split: {text!r} must be 2 or 3 whole percentages summing to 100, e.g. 70/15/15"
            )
        return cls(tuple(zip(SPLIT_NAMES, values, strict=False)))


def label_samples(
    service: ReviewService, ids: list[str], label: str, *, reviewer: str, adjudicate: bool = False
) -> list[str]:
    """Vote ``label`` for each sample as ``reviewer`` (or decide it, with ``adjudicate``), exactly as the
    review app does; return one problem line per id that could not be labeled."""
    if safe_component(label) != label:
        raise ConfigError(f"--as: {label!r} may only contain letters, digits, '_', '-', '.'")
    problems = []
    for sample_id in ids:
        try:
            if adjudicate:
                service.adjudicate(sample_id, reviewer, label, "cli")
            else:
                service.vote(sample_id, reviewer, label, "cli")
        except ReviewError as exc:
            problems.append(str(exc))
    return problems


def reopen_samples(service: ReviewService, ids: list[str], *, admin: str, reason: str) -> list[str]:
    """Send each decided sample back for a new review round as ``admin``, exactly as the review
    app's reopen does; return one problem line per id that could not be reopened."""
    problems = []
    for sample_id in ids:
        try:
            service.reopen(sample_id, admin, reason)
        except ReviewError as exc:
            problems.append(str(exc))
    return problems


def assign_splits(rows: list[tuple[str, str, str]], split: Split, seed: int) -> dict[str, str]:
    """id -> split name, stratified by label (largest remainder per label)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for sample_id, label, _ in rows:
        by_label[label].append(sample_id)
    out: dict[str, str] = {}
    for label, ids in sorted(by_label.items()):
        ids.sort()
        random.Random(f"{seed}/{label}").shuffle(ids)
        counts = _largest_remainder(len(ids), [pct for _, pct in split.parts])
        start = 0
        for (name, _), count in zip(split.parts, counts, strict=True):
            out.update(dict.fromkeys(ids[start : start + count], name))
            start += count
    return out


def _largest_remainder(n: int, percents: list[int]) -> list[int]:
    exact = [n * p / 100 for p in percents]
    counts = [int(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def export(
    service: ReviewService,
    target: Path,
    *,
    fmt: str,
    split: Split,
    seed: int,
    model: str | None = None,
    version: str | None = None,
    image_url: str | None = None,
) -> dict[str, Any]:
    """Write the consensus-labeled samples to ``target`` (image folder, CSV, COCO or YOLO) with, per
    sample, how it was labeled (``provenance.jsonl``); for ``label-studio`` the samples still open,
    as tasks. Return a summary."""
    if fmt == "label-studio":
        from agent.collector.formats.tasks import export_tasks

        return export_tasks(service, target, split=split, seed=seed, model=model, version=version,
                            image_url=image_url)  # fmt: skip
    if fmt in ("coco", "yolo"):
        from agent.collector.formats.boxes_export import export_boxes

        return export_boxes(service, target, fmt=fmt, split=split, seed=seed, model=model, version=version)
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    rows, missing = labeled_rows(service, model, version)
    splits = assign_splits([(r["id"], r["label"], r["path"]) for r in rows], split, seed)
    target.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    records = []
    with (target / "provenance.jsonl").open("w", encoding="utf-8") as prov:
        for row in rows:
            name, sample_id, label = splits[row["id"]], row["id"], row["label"]
            rel = f"{name}/{label}/{sample_id}.jpg" if fmt == "imagefolder" else f"images/{sample_id}.jpg"
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(service.storage.read(row["path"]))
            counts[f"{name}/{label}"] += 1
            reviewers = " ".join(v["reviewer"] for v in row["votes"])
            records.append({"id": sample_id, "split": name, "label": label, "path": rel, "how": row["how"],
                            "reviewers": reviewers})  # fmt: skip
            prov.write(json.dumps(provenance_line(row, name, rel), separators=(",", ":")) + "\n")
    write_metadata(service.index, target, records)
    if fmt == "csv":
        with (target / "dataset.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["id", "split", "label", "path", "how", "reviewers"])
            writer.writeheader()
            writer.writerows(records)
    summary = {
        "format": fmt,
        "split": dict(split.parts),
        "seed": seed,
        "model": model,
        "version": version,
        "samples": len(rows),
        "counts": dict(sorted(counts.items())),
        "provenance": "provenance.jsonl",
        "missing": [r["id"] for r in missing],
    }
    return write_summary(target, summary)


def labeled_rows(
    service: ReviewService, model: str | None, version: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(consensus-labeled samples whose image is in storage, those whose image is missing)."""
    found = queries.consensus(service.index, model, version)
    if not found:
        raise AgentError("no labeled samples to export (review some, or `inspection-agent dataset label`)")
    rows: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for row in found:
        key = service.locate(row)
        (rows if key is not None else missing).append(row)
        row["path"] = key
    return rows, missing


def write_summary(target: Path, summary: dict[str, Any]) -> dict[str, Any]:
    (target / "export.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def write_metadata(index: Index, target: Path, records: list[dict[str, str]]) -> None:
    """``metadata.csv``: where each exported frame came from, so ``model evaluate`` can disaggregate."""
    with (target / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "path", "site", "line", "device"])
        writer.writeheader()
        for r in records:
            row = index.sample(r["id"]) or {}
            writer.writerow(
                {"id": r["id"], "path": r["path"], **{k: row.get(k, "") for k in ("site", "line", "device")}}
            )


def provenance_line(row: dict[str, Any], split: str, rel: str) -> dict[str, Any]:
    return {
        "id": row["id"], "split": split, "path": rel, "label": row["label"], "predicted": row["predicted"],
        "how": row["how"], "decided_by": row["decided_by"], "decided_at": row["decided_at"],
        "votes": [{k: v[k] for k in ("reviewer", "label", "ts", "source")} for v in row["votes"]],
    }  # fmt: skip


def dataset_stats(index: Index) -> list[dict[str, Any]]:
    """Counts per model, version, state (labeled/unlabeled) and label (the predicted one if unlabeled)."""
    rows = index.query(
        "SELECT model, version, CASE WHEN label IS NULL THEN 'unlabeled' ELSE 'labeled' END, "
        "coalesce(label, predicted), count(*), sum(bytes) FROM samples "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    keys = ("model", "version", "state", "label", "count", "bytes")
    return [dict(zip(keys, r, strict=True)) for r in rows]
