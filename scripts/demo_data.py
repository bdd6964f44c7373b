"""Data for the demo model: synthetic parts, image folders, the agent's preprocessing and splits.

No TensorFlow here, so ``make_dataset.py`` and ``make_demo_clip.py`` stay light.
Every synthetic sample is rendered from its own generator seeded by
``(seed, class, index)``, so a dataset is the same whatever the number of worker
processes or the order they finish in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.synthetic import LABELS, render_part

INPUT_SIZE = 96  # the model's square input, pixels
SCALE = 1.0 / 255.0  # manifest input.scale: uint8 gray -> 0..1, applied outside the network
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

# Frame sizes the training renders come in, with weights. 640x480 is the demo camera; the
# others teach the model that the stretch to 96x96 changes aspect and scale.
DEFAULT_SIZES: tuple[tuple[int, int, float], ...] = (
    (640, 480, 0.40),
    (320, 240, 0.10),
    (800, 600, 0.08),
    (1280, 720, 0.08),
    (480, 480, 0.10),
    (480, 640, 0.06),
    (256, 256, 0.08),
    (160, 120, 0.05),
    (96, 96, 0.05),
)
JPEG_FRACTION = 0.35  # share of renders passed through JPEG, like frames saved by the collector or a codec
SEVERITY_RANGE = (0.6, 1.0)  # defect contrast in training: plainly visible, not all equally so


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to re-create one synthetic frame exactly (used to re-render golden images at full size)."""

    seed: int
    label: str
    index: int


@dataclass(slots=True)
class Dataset:
    """Preprocessed model inputs (N, 96, 96) uint8 gray, integer labels, and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(self.images[idx], self.labels[idx], [self.sources[i] for i in idx])

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_dataset()
        return Dataset(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.labels for p in parts]),
            [s for p in parts for s in p.sources],
        )


def empty_dataset() -> Dataset:
    return Dataset(np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8), np.zeros(0, np.int64), [])


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height)."""
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()):
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT")
    return int(w), int(h)


def preprocess(bgr: np.ndarray) -> np.ndarray:
    """Exactly the agent's preprocessing up to the uint8 gray model-size image.

    The float step (``x * scale``, mean 0, std 1) is :func:`to_input`.
    """
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA), np.uint8)


def to_input(gray96: np.ndarray) -> np.ndarray:
    """uint8 (N, 96, 96) -> float32 (N, 96, 96, 1) in 0..1, the network's float input."""
    return (gray96.astype(np.float32) * np.float32(SCALE))[..., None]


def render_sample(
    recipe: Recipe, sizes: Sequence[tuple[int, int, float]] = DEFAULT_SIZES
) -> tuple[np.ndarray, dict[str, object]]:
    """Render one training frame (BGR, full size) and describe how it was made."""
    rng = np.random.default_rng([recipe.seed, LABELS.index(recipe.label), recipe.index])
    weights = np.array([s[2] for s in sizes], dtype=np.float64)
    w, h, _ = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))]
    severity = float(rng.uniform(*SEVERITY_RANGE))
    quality = int(rng.integers(40, 96)) if rng.random() < JPEG_FRACTION else 0
    image = render_part(rng, recipe.label, w, h, severity=severity)
    if quality:
        buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
    return image, {"width": w, "height": h, "severity": round(severity, 3), "jpeg_quality": quality}


def _render_preprocessed(args: tuple[Recipe, tuple[tuple[int, int, float], ...]]) -> np.ndarray:
    cv2.setNumThreads(1)  # one process per core already
    return preprocess(render_sample(*args)[0])


def recipes(seed: int, per_class: int, labels: Sequence[str] = LABELS) -> list[Recipe]:
    return [Recipe(seed, label, i) for label in labels for i in range(per_class)]


def synthetic_dataset(
    seed: int,
    per_class: int,
    sizes: Sequence[tuple[int, int, float]] = DEFAULT_SIZES,
    workers: int | None = None,
) -> Dataset:
    """Render ``per_class`` frames of every label and preprocess them; parallel, order-stable."""
    todo = recipes(seed, per_class)
    jobs = [(r, tuple(sizes)) for r in todo]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 50:
        with ProcessPoolExecutor(workers) as pool:
            images = list(pool.map(_render_preprocessed, jobs, chunksize=32))
    else:
        images = [_render_preprocessed(j) for j in jobs]
    labels = np.array([LABELS.index(r.label) for r in todo], dtype=np.int64)
    sources = [f"synthetic:{r.seed}:{r.label}:{r.index}" for r in todo]
    return Dataset(np.stack(images), labels, sources)


def camera_dataset(seed: int, per_class: int, width: int = 640, height: int = 480) -> Dataset:
    """Frames exactly as the agent's ``synthetic:`` camera renders them (default severity, no JPEG)."""
    images, labels, sources = [], [], []
    for c, label in enumerate(LABELS):
        for i in range(per_class):
            rng = np.random.default_rng([seed, 1_000_003, c, i])  # a stream apart from the training renders
            images.append(preprocess(render_part(rng, label, width, height)))
            labels.append(c)
            sources.append(f"camera:{seed}:{label}:{i}")
    return Dataset(np.stack(images), np.array(labels, dtype=np.int64), sources)


def stratified_split(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """70/15/15 indices per class, shuffled with ``seed``; every class present in every split if it can be."""
    rng = np.random.default_rng([seed, 7])
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(len(idx) * SPLIT_FRACTIONS[1])
        n_test = round(len(idx) * SPLIT_FRACTIONS[2])
        n_train = len(idx) - n_val - n_test
        out["train"] += idx[:n_train].tolist()
        out["val"] += idx[n_train : n_train + n_val].tolist()
        out["test"] += idx[n_train + n_val :].tolist()
    return {s: np.array(sorted(v), dtype=np.int64) for s, v in out.items()}


def _label_dirs(root: Path) -> Iterator[tuple[int, Path]]:
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name not in LABELS:
            raise ValueError(f"{d}: unknown label directory; expected one of {', '.join(LABELS)}")
        yield LABELS.index(d.name), d


def read_folder(root: Path) -> Dataset:
    """Every image directly under ``root/{label}/``, preprocessed like the agent."""
    images, labels, sources = [], [], []
    for c, d in _label_dirs(root):
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{f}: not a readable image")
            images.append(preprocess(np.asarray(bgr, np.uint8)))
            labels.append(c)
            sources.append(str(f))
    if not images:
        return empty_dataset()
    return Dataset(np.stack(images), np.array(labels, dtype=np.int64), sources)


def read_imagefolder(root: Path, seed: int) -> dict[str, Dataset]:
    """``root/{train,val,test}/{label}/*`` as given, or ``root/{label}/*`` split 70/15/15 here."""
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    if any((root / s).is_dir() for s in SPLITS):
        return {s: read_folder(root / s) if (root / s).is_dir() else empty_dataset() for s in SPLITS}
    whole = read_folder(root)
    return {s: whole.subset(idx) for s, idx in stratified_split(whole.labels, seed).items()}
