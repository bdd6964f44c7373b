"""Golden images: what the model said about known images when it was packed, checked again on the device.

``<golden>/expected.json`` is::

    {"tolerance": 0.1,
     "images": {"x.png": {"label": "scratch", "scores": {"tflite": [...], "onnx": [...]}}}}

with scores in label order, per runtime. ``pack`` writes it by running every runtime
the package carries; ``validate`` re-runs them and demands the same label and every
score within ``tolerance`` (the same figure is printed with the result).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from agent.errors import ModelError
from agent.model.result import InferenceResult

EXPECTED = "expected.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_TOLERANCE = 0.1


class Inferer(Protocol):
    def infer(self, image: np.ndarray) -> InferenceResult: ...


@dataclass(slots=True)
class GoldenReport:
    tolerance: float
    compared: int = 0
    max_diff: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.compared > 0 and not self.failures


def golden_images(directory: Path) -> list[Path]:
    images = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise ModelError(f"no golden images ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    return images


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 frame, as a camera would deliver it (grey images are expanded to 3 channels)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ModelError(f"cannot read golden image {path.name} (not an image OpenCV can decode)")
    return np.asarray(image)


def compute_expected(models: Mapping[Any, Inferer], images: list[Path], tolerance: float) -> dict[str, Any]:
    """Run every runtime on every image; refuse images on which the runtimes disagree about the label."""
    out: dict[str, Any] = {}
    for path in images:
        frame = read_image(path)
        results = {kind: model.infer(frame) for kind, model in models.items()}
        labels = {r.label for r in results.values()}
        if len(labels) > 1:
            said = ", ".join(f"{k} says {r.label}" for k, r in results.items())
            raise ModelError(
                f"golden image {path.name}: the runtimes disagree ({said}); pick clearer golden images"
            )
        first = next(iter(results.values()))
        out[path.name] = {
            "label": first.label,
            "scores": {kind: [round(v, 6) for v in r.scores.values()] for kind, r in results.items()},
        }
    return {"tolerance": tolerance, "images": out}


def write_expected(directory: Path, expected: dict[str, Any]) -> Path:
    target = directory / EXPECTED
    target.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def read_expected(directory: Path) -> dict[str, Any]:
    path = directory / EXPECTED
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), dict) or not doc["images"]:
        raise ModelError(f"{path}: needs an 'images' mapping of image name -> label and scores")
    return doc


def check_golden(model: Inferer, runtime: str, directory: Path) -> GoldenReport:
    """Compare one runtime's results on every golden image with expected.json."""
    expected = read_expected(directory)
    report = GoldenReport(float(expected.get("tolerance", DEFAULT_TOLERANCE)))
    for name, want in sorted(expected["images"].items()):
        scores = (want.get("scores") or {}).get(runtime)
        if scores is None:
            report.failures.append(f"{name}: expected.json has no {runtime} scores")
            continue
        result = model.infer(read_image(directory / Path(name).name))
        report.compared += 1
        got = np.asarray(list(result.scores.values()), np.float64)
        if got.shape != (len(scores),):
            report.failures.append(f"{name}: {got.size} scores, expected.json has {len(scores)}")
            continue
        diff = float(np.max(np.abs(got - np.asarray(scores, np.float64)))) if got.size else 0.0
        report.max_diff = max(report.max_diff, diff)
        if result.label != want.get("label"):
            report.failures.append(f"{name}: label {result.label}, expected {want.get('label')}")
        elif diff > report.tolerance:
            report.failures.append(f"{name}: scores differ by {diff:.4f} > tolerance {report.tolerance}")
    return report
