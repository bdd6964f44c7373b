"""Merging data across retrains: duplicates out, a split that never moves an id, classes checked.

The split of an id is decided once and then kept: first from the ledger the previous
package recorded (``training/dataset.csv``), else from a digest of the id itself, so the
same id lands in the same split on every machine and in every retrain, whatever else
was added. An id that was ever in test is never trained on.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agent.errors import DataError
from agent.train.data import Samples

SPLITS = ("train", "val", "test")
LEDGER = "dataset.csv"
_HASH_SIDE = 16  # difference hash of a 17x16 grey thumbnail: 256 bits
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


@dataclass(slots=True)
class MergeReport:
    duplicate_ids: int = 0
    near_duplicates: int = 0
    label_conflicts: list[str] = field(default_factory=list)  # same frame, different labels: first kept
    moved_to_fill: list[str] = field(default_factory=list)  # new ids placed so every class is evaluated


def difference_hash(image: np.ndarray) -> np.ndarray:
    """256-bit dHash (packed to 32 bytes): sign of horizontal gradients of a 17x16 grey thumbnail.

    Survives re-encoding, small brightness changes and resizing, so the same frame saved
    twice (or by two collectors) matches while different parts do not.
    """
    gray = image[..., 0] if image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (_HASH_SIDE + 1, _HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits(small[:, 1:] > small[:, :-1])


def deduplicate(samples: Samples, max_bits: int, report: MergeReport) -> Samples:
    """Drop repeated ids, then frames within ``max_bits`` of an earlier one; earlier data wins."""
    seen: set[str] = set()
    unique: list[int] = []
    kept_hashes = np.zeros((len(samples), 32), np.uint8)
    for i, sample_id in enumerate(samples.ids):
        if sample_id in seen:
            report.duplicate_ids += 1
            continue
        seen.add(sample_id)
        digest = difference_hash(samples.images[i])
        distances = _POPCOUNT[np.bitwise_xor(kept_hashes[: len(unique)], digest)].sum(axis=1)
        near = np.flatnonzero(distances <= max_bits)
        if near.size:
            first = unique[int(near[0])]
            report.near_duplicates += 1
            if samples.labels[first] != samples.labels[i]:
                report.label_conflicts.append(f"{sample_id} ~ {samples.ids[first]}")
            continue
        kept_hashes[len(unique)] = digest
        unique.append(i)
    return samples.subset(unique)


def hash_split(sample_id: str, percents: tuple[int, int, int]) -> str:
    """train/val/test from a digest of the id alone: stable across machines and retrains."""
    bucket = int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < percents[0] else "val" if bucket < percents[0] + percents[1] else "test"


def read_ledger(path: Path) -> dict[str, str]:
    """id -> split recorded by an earlier training run (empty when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["id"]: r["split"] for r in csv.DictReader(fh) if r.get("split") in SPLITS}


def write_ledger(path: Path, samples: Samples, assignment: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "split", "label", "origin"])
        rows = zip(samples.ids, assignment, samples.labels, samples.origins, strict=True)
        for sample_id, split, label, origin in sorted(rows):
            writer.writerow([sample_id, split, samples.names[label], origin])


def assign(
    samples: Samples, ledger: dict[str, str], percents: tuple[int, int, int], report: MergeReport
) -> list[str]:
    """The split of every sample: the ledger's, else the id's digest; each class gets val and test."""
    out = [ledger.get(i) or hash_split(i, percents) for i in samples.ids]
    for c, name in enumerate(samples.names):
        members = np.flatnonzero(samples.labels == c)
        for split in ("test", "val"):
            if len(members) < 3 or any(out[i] == split for i in members):
                continue
            movable = sorted(
                (samples.ids[i], i) for i in members if out[i] == "train" and samples.ids[i] not in ledger
            )
            if movable:
                out[movable[0][1]] = split
                report.moved_to_fill.append(f"{name}: {movable[0][0]} -> {split}")
    return out


def by_split(samples: Samples, assignment: list[str]) -> dict[str, Samples]:
    labels = np.asarray(assignment)
    return {s: samples.subset(np.flatnonzero(labels == s)) for s in SPLITS}


def check_classes(samples: Samples, min_per_class: int, on_few: str) -> list[str]:
    """Refuse data that cannot train a classifier; return warnings for classes below ``min_per_class``."""
    counts = Counter(samples.names[c] for c in samples.labels)
    if len(counts) < 2:
        only = ", ".join(counts) or "none"
        raise DataError(f"the data has {len(counts)} class(es) ({only}); a classifier needs at least 2")
    few = [f"{name} has {n} image(s)" for name, n in sorted(counts.items()) if n < min_per_class]
    if few and on_few == "refuse":
        raise DataError(
            f"too few images: {'; '.join(few)} (min_per_class {min_per_class}; "
            "add images, or set on_few: warn to train anyway)"
        )
    return [f"{text}, fewer than min_per_class {min_per_class}" for text in few]
