"""Reading what ``inspection-agent train`` trains on: merge every source, deduplicate, check, split stably.

TensorFlow-free, so every bad input is found (and tested) before a model is even loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import DataError
from agent.model.manifest import InputSpec
from agent.train import data, split
from agent.train.config import TrainConfig

TRAINING_DIR = "training"  # in a package: the record of how it was trained (report, ledger, float model)
SOURCES = "sources.json"


Say = Callable[[str], None]
TRAINING_DIR = "training"
SOURCES = "sources.json"


@dataclass(frozen=True, slots=True)
class Request:
    data: tuple[Path, ...]
    base: Path
    out: Path
    version: str
    config: TrainConfig
    force: bool = False


@dataclass(slots=True)
class Prepared:
    """The data after merging, deduplication and the stable split, and what was learned doing it."""

    splits: dict[str, data.Samples]
    report: dict[str, Any]
    ledger: tuple[data.Samples, list[str]]


def data_dirs(req: Request) -> list[Path]:
    """The base package's own training data first (when still on disk and wanted), then the new."""
    dirs: list[Path] = []
    record = req.base / TRAINING_DIR / SOURCES
    if req.config.previous_data and record.is_file():
        dirs += [Path(p) for p in json.loads(record.read_text())["data"] if Path(p).is_dir()]
    for d in req.data:
        if d.resolve() not in [p.resolve() for p in dirs]:
            dirs.append(d)
    return dirs


def check_shapes(found: dict[tuple[int, int, int], int], spec: InputSpec, policy: str) -> str:
    """Frames whose size or channels differ from the model input: resized (reported) or refused."""
    want = (spec.width, spec.height, spec.channels)
    other = {s: n for s, n in found.items() if s != want}
    if not other:
        return ""
    n = sum(other.values())
    shapes = ", ".join(f"{w}x{h}x{c}" for w, h, c in sorted(other, key=lambda s: -other[s])[:3])
    what = f"{n} image(s) are {shapes}, the base model takes {want[0]}x{want[1]}x{want[2]}"
    if policy == "refuse":
        raise DataError(f"{what}; set input_mismatch: resize to resize them as the agent does on the device")
    return f"{what}: resized ({spec.resize}) and converted to {spec.color}, as the agent does"


def prepare(req: Request, spec: InputSpec, base_labels: list[str] | None, say: Say) -> Prepared:
    """Read, merge, deduplicate, check and split every --data directory."""
    cfg, dirs = req.config, data_dirs(req)
    entries = [e for d in dirs for e in data.scan(d)]
    names = data.label_order([e.label for e in entries], base_labels)
    samples, read = data.load(entries, spec, names)
    for line in read.corrupt[:5]:
        say(f"skipped: {line}")
    resized = check_shapes(dict(read.frame_shapes), spec, cfg.input_mismatch)
    merge = split.MergeReport()
    samples = split.deduplicate(samples, cfg.near_duplicate_bits, merge)
    warnings = split.check_classes(samples, cfg.min_per_class, cfg.on_few)
    ledger = split.read_ledger(req.base / TRAINING_DIR / split.LEDGER)
    assignment = split.assign(samples, ledger, tuple(cfg.split), merge)  # type: ignore[arg-type]
    splits = split.by_split(samples, assignment)
    if not len(splits["train"]) or not len(splits["val"]) or not len(splits["test"]):
        sizes = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
        raise DataError(f"not enough images to fill train, val and test ({sizes}); add images")
    report = {
        "sources": [str(d) for d in dirs],
        "files": len(entries),
        "corrupt_skipped": len(read.corrupt),
        "corrupt": read.corrupt,
        "resized": resized,
        "duplicate_ids": merge.duplicate_ids,
        "near_duplicates": merge.near_duplicates,
        "label_conflicts": merge.label_conflicts,
        "split_filled": merge.moved_to_fill,
        "previously_split": sum(i in ledger for i in samples.ids),
        "warnings": warnings,
        "per_class": {s: v.counts() for s, v in splits.items()},
        "per_source": _per_source(samples),
    }
    return Prepared(splits, report, (samples, assignment))


def _per_source(samples: data.Samples) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for origin, label in zip(samples.origins, samples.labels, strict=True):
        counts = out.setdefault(origin, {})
        counts[samples.names[label]] = counts.get(samples.names[label], 0) + 1
    return out
