"""The parts of a model package that come from training: golden images, drift reference, evaluation file.

Everything here is a pure function of the models and the data (no timestamps), so the
same run writes the same bytes. ``pack`` (agent.model.pack) then records the golden
scores through the agent's own runtimes and writes the checksums.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.imagestats import STAT_NAMES, image_stats
from agent.model.manifest import InputSpec
from agent.train.data import model_view, preprocessor

Runner = Callable[[np.ndarray], np.ndarray]
FrameOf = Callable[[int], np.ndarray]  # test-split index -> the full-size BGR frame it was made from

GOLDEN_LONG_SIDE = 128  # golden PNGs: small, so the package stays small, yet the loader's resize runs
GOLDEN_PER_CLASS = 2
GOLDEN_MARGIN = 0.3  # top-1 minus top-2 probability required of every int8 model
GOLDEN_TOLERANCE = 0.1
REFERENCE_POINTS = 256
_TO_GRAY = {"RGB": cv2.COLOR_RGB2GRAY, "BGR": cv2.COLOR_BGR2GRAY}


def dumps(obj: object) -> str:
    """Indented JSON with numeric lists kept on one line, so score vectors and matrix rows read as rows."""
    text = json.dumps(obj, indent=1)
    return (
        re.sub(r"\[\s+([-0-9.,e\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
        + "\n"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def golden_frame(frame: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame shrunk for the golden set: to ``size`` (w, h), else its long side to 128 px."""
    if size is None:
        h, w = frame.shape[:2]
        s = min(1.0, GOLDEN_LONG_SIDE / max(h, w))
        size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)


def _margin(scores: np.ndarray) -> float:
    top = np.sort(scores)[::-1]
    return float(top[0] - top[1]) if len(top) > 1 else float(top[0])


def _rank(true_class: int, scores: dict[str, np.ndarray], order: int) -> tuple[int, float] | None:
    """Sort key for golden candidates, best first; ``None`` when the runtimes disagree (unusable).

    Tiers: right with a clear margin (in test order), right, wrong but agreed.
    """
    predicted = {int(s.argmax()) for s in scores.values()}
    if len(predicted) != 1:
        return None
    margin = min(_margin(s) for s in scores.values())
    if predicted == {true_class}:
        return (0, float(order)) if margin >= GOLDEN_MARGIN else (1, -margin)
    return (2, -margin)


def write_golden(
    out: Path,
    test_labels: np.ndarray,
    names: Sequence[str],
    frame_of: FrameOf,
    runners: dict[str, Runner],
    *,
    spec: InputSpec,
    size: tuple[int, int] | None = None,
    max_tries: int = 60,
) -> dict[str, Any]:
    """Pick test images every int8 model gets right with a clear margin; save them small; record scores.

    Scores come from re-reading the saved PNG through the agent's preprocessing, so
    they are what the loader's self-test computes. The recorded label is what the
    models say, which is the true label except for a model too weak to get any image
    of a class right (then a warning is printed).
    """
    golden = out / "golden"
    golden.mkdir(parents=True, exist_ok=True)
    pre = preprocessor(spec)
    images: dict[str, Any] = {}
    for c, label in enumerate(names):
        candidates = []
        for order, i in enumerate(np.flatnonzero(test_labels == c)[:max_tries]):
            small = golden_frame(frame_of(int(i)), size)
            reread = np.asarray(cv2.imdecode(cv2.imencode(".png", small)[1], cv2.IMREAD_COLOR), np.uint8)
            view = model_view(pre, reread)
            scores = {name: run(view[None])[0] for name, run in runners.items()}
            rank = _rank(c, scores, order)
            if rank is not None:
                candidates.append((rank, small, scores))
            if sum(r[0] == 0 for r, *_ in candidates) >= GOLDEN_PER_CLASS:
                break
        candidates.sort(key=lambda t: t[0])
        for k, (rank, small, scores) in enumerate(candidates[:GOLDEN_PER_CLASS]):
            said = names[int(next(iter(scores.values())).argmax())]
            if rank[0]:
                print(f"warning: golden {label}_{k}.png: models say {said}, margin {-rank[1]:.2f}")
            cv2.imwrite(str(golden / f"{label}_{k}.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            images[f"{label}_{k}.png"] = {
                "label": said,
                "scores": {name: [round(float(v), 6) for v in s] for name, s in scores.items()},
            }
    expected = {"tolerance": GOLDEN_TOLERANCE, "images": images}
    (golden / "expected.json").write_text(dumps(expected))
    return expected


def gray(images: np.ndarray, color: str) -> list[np.ndarray]:
    """Model-size images as grey, the way the device's drift monitor sees its view of a frame."""
    x = images if images.ndim == 4 else images[..., None]
    if x.shape[-1] == 1:
        return [img[..., 0] for img in x]
    return [cv2.cvtColor(img, _TO_GRAY[color]) for img in x]


def _quantiles(top1: np.ndarray) -> list[float]:
    points = np.linspace(0.0, 1.0, min(REFERENCE_POINTS, len(top1)))
    return sorted(round(float(q), 4) for q in np.quantile(top1, points, method="inverted_cdf"))


def _image_stats(stats: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean/std per statistic; sharpness also in log space, where the device tests it (docs/health.md)."""
    out = {
        name: {"mean": round(float(stats[:, j].mean()), 4), "std": round(float(stats[:, j].std()), 4)}
        for j, name in enumerate(STAT_NAMES)
    }
    log = np.log(np.maximum(stats[:, STAT_NAMES.index("sharpness")], 1e-6))
    out["sharpness"].update(log_mean=round(float(log.mean()), 4), log_std=round(float(log.std()), 4))
    return out


def reference_block(
    images: np.ndarray, names: Sequence[str], tflite: Runner, split: str, color: str = "GRAY"
) -> dict[str, Any]:
    """What held-out data looks like to the int8 TFLite model, for drift detection on the device.

    ``by_class`` repeats the confidences and image statistics per predicted class, so the
    device can compare a line that is mostly good parts with the good parts' reference
    (docs/health.md); a class predicted fewer than twice gets no entry.
    """
    probs = tflite(images)
    top1 = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    stats = np.array([image_stats(g) for g in gray(images, color)])
    by_class = {
        label: {
            "samples": int((pred == c).sum()),
            "top1_confidence": _quantiles(top1[pred == c]),
            "image_stats": _image_stats(stats[pred == c]),
        }
        for c, label in enumerate(names)
        if (pred == c).sum() >= 2
    }
    return {
        "split": split,
        "samples": len(images),
        "top1_confidence": _quantiles(top1),
        "class_mix": {label: round(float((pred == c).mean()), 4) for c, label in enumerate(names)},
        "image_stats": _image_stats(stats),
        "by_class": by_class,
    }
