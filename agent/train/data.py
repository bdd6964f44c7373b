"""Training images from ``dataset export`` folders (image folder or CSV) and plain image folders.

Every image goes through the agent's own preprocessing (:class:`agent.model.preprocess.Preprocessor`),
so the network trains on exactly the pixels it will see on the device. An image that cannot be
decoded is skipped and counted, never fatal. Ids: a collector export names each file by its
sample id; anywhere else the id is a digest of the file's bytes, so the same file is the same id.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agent.errors import DataError
from agent.model.manifest import InputSpec
from agent.model.preprocess import Preprocessor
from agent.runtimes.base import TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLIT_DIRS = ("train", "val", "test")
EXPORT_SUMMARY = "export.json"
EXPORT_CSV = "dataset.csv"


@dataclass(frozen=True, slots=True)
class Entry:
    """One image file before it is read: where it is, what it is labeled, which --data it came from."""

    path: Path
    label: str
    origin: str
    id: str | None  # None: not an export, the id is the file's digest


@dataclass(slots=True)
class Samples:
    """Model-size uint8 images ``(N, H, W, C)``, label indices into ``names``, and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    sources: list[str]
    origins: list[str]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Samples:
        take = np.asarray(idx, dtype=np.int64)
        return Samples(
            self.images[take],
            self.labels[take],
            [self.ids[i] for i in take],
            [self.sources[i] for i in take],
            [self.origins[i] for i in take],
            self.names,
        )

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == c).sum()) for c, name in enumerate(self.names)}


@dataclass(slots=True)
class ReadReport:
    """What reading found besides the images: skipped files and how frame shapes compared to the model."""

    corrupt: list[str] = field(default_factory=list)
    frame_shapes: Counter[tuple[int, int, int]] = field(default_factory=Counter)  # (w, h, channels)


def scan(root: Path) -> list[Entry]:
    """Every labeled image file under one --data directory, in a stable order."""
    if not root.is_dir():
        raise DataError(f"--data {root}: not a directory")
    origin = str(root)
    exported = (root / EXPORT_SUMMARY).is_file()
    if (root / EXPORT_CSV).is_file():
        return _scan_csv(root, origin)
    tops = [root / s for s in SPLIT_DIRS if (root / s).is_dir()] or [root]
    entries = []
    for top in tops:
        for label_dir in sorted(p for p in top.iterdir() if p.is_dir()):
            for f in sorted(label_dir.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    entries.append(Entry(f, label_dir.name, origin, f.stem if exported else None))
    return entries


def _scan_csv(root: Path, origin: str) -> list[Entry]:
    with (root / EXPORT_CSV).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"id", "label", "path"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"{root / EXPORT_CSV}: missing column(s) {', '.join(sorted(missing))}")
    return [Entry(root / r["path"], r["label"], origin, r["id"]) for r in rows]


def file_id(data: bytes) -> str:
    return "sha-" + hashlib.sha256(data).hexdigest()[:20]


def preprocessor(spec: InputSpec) -> Preprocessor:
    """The agent's preprocessing for ``spec``, stopped before normalisation (its ``view`` is what we keep)."""
    tensor = TensorSpec("image", (1, spec.height, spec.width, spec.channels), np.dtype(np.float32))
    return Preprocessor(spec, tensor)


def model_view(pre: Preprocessor, bgr: np.ndarray) -> np.ndarray:
    """A BGR frame at model size and colour, ``(H, W, C)`` uint8."""
    pre(bgr)
    view = pre.view
    assert view is not None
    return view.reshape(pre.spec.height, pre.spec.width, pre.spec.channels)


def decode(data: bytes) -> tuple[np.ndarray, int] | None:
    """(BGR frame, channels in the file) or None when the bytes are not an image OpenCV can read."""
    try:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error:
        raw = None
    if raw is None or raw.size == 0:
        return None
    channels = 1 if raw.ndim == 2 else int(raw.shape[2])
    if raw.dtype != np.uint8:
        raw = cv2.convertScaleAbs(raw, alpha=255.0 / max(1.0, float(raw.max())))
    bgr = cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR) if channels == 1 else raw[:, :, :3]
    return np.ascontiguousarray(bgr), min(channels, 3)


def read_entries(
    entries: list[Entry], spec: InputSpec, report: ReadReport
) -> Iterator[tuple[Entry, str, np.ndarray]]:
    """(entry, id, model-size image) for each readable file."""
    pre = preprocessor(spec)
    for entry in entries:
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            report.corrupt.append(f"{entry.path}: {exc.strerror or exc}")
            continue
        decoded = decode(data)
        if decoded is None:
            report.corrupt.append(f"{entry.path}: not a readable image")
            continue
        bgr, channels = decoded
        report.frame_shapes[(bgr.shape[1], bgr.shape[0], channels)] += 1
        yield entry, entry.id or file_id(data), model_view(pre, bgr)


def load(entries: list[Entry], spec: InputSpec, names: tuple[str, ...]) -> tuple[Samples, ReadReport]:
    """Read every entry (labels must be in ``names``) into one :class:`Samples`; corrupt files counted."""
    report = ReadReport()
    images, labels, ids, sources, origins = [], [], [], [], []
    for entry, sample_id, image in read_entries(entries, spec, report):
        images.append(image)
        labels.append(names.index(entry.label))
        ids.append(sample_id)
        sources.append(str(entry.path))
        origins.append(entry.origin)
    shape = (0, spec.height, spec.width, spec.channels)
    stack = np.stack(images) if images else np.zeros(shape, np.uint8)
    return Samples(stack, np.asarray(labels, np.int64), ids, sources, origins, names), report


def label_order(found: Sequence[str], base: Sequence[str] | None) -> tuple[str, ...]:
    """The base model's labels that the data still has, in their order, then new ones ("ok" first)."""
    present = set(found)
    kept = [name for name in base or () if name in present]
    new = sorted(present - set(kept), key=lambda n: (n != "ok", n))
    return tuple(kept + new)
