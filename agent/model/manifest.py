"""The model package manifest (``manifest.yaml``): what a model is, how to feed it, how to read it.

Parsed with the same strict validator as the agent's config, so a bad manifest is
reported as ``manifest.yaml:line: key.path: what is wrong``. See docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agent.config.loader import read_yaml
from agent.config.typed import build
from agent.errors import ConfigError, ModelError
from agent.runtimes.base import SUFFIX_RUNTIME, RuntimeKind

# Each task has one postprocessor module (agent/model/postprocess/TASK_MODULES).
Task = Literal["classification", "detection", "anomaly"]

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class InputSpec:
    width: int
    height: int
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    color: Literal["RGB", "BGR", "GRAY"] = "RGB"
    resize: Literal["stretch", "letterbox", "center_crop"] = "stretch"
    scale: float = 1.0 / 255.0  # applied to 0..255 pixels before mean/std
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    letterbox_fill: int = 114

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    def _check(self) -> Problems:
        problems: Problems = []
        if self.width < 1 or self.height < 1:
            problems.append(("width", "width and height must be positive"))
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, self.channels):
                problems.append((key, f"needs 1 or {self.channels} values for color {self.color}"))
        if any(v == 0 for v in self.std):
            problems.append(("std", "must not contain 0"))
        return problems


@dataclass(frozen=True, slots=True)
class OutputSpec:
    activation: Literal["none", "softmax", "sigmoid"] = "none"
    # classification: "scores"; detection: "ssd" (boxes, classes, scores, count) or "yolo" (raw tensor);
    # anomaly: "score" (a scalar) or "map" (a per-pixel map whose max is the score);
    # detection "end2end": [1, N, 6] rows of x1, y1, x2, y2, score, class, already past NMS.
    format: Literal["auto", "scores", "ssd", "yolo", "end2end", "score", "map"] = "auto"
    # YOLO: whether the raw tensor has an objectness column after the 4 box values.
    objectness: bool = False
    # Detection: box coordinates in pixels of the model input (yolo) or normalised (ssd).
    box_format: Literal["auto", "xywh", "xyxy", "yxyx"] = "auto"
    # yolo/end2end: boxes in model-input pixels (Ultralytics ONNX) or 0..1 of the input (Ultralytics
    # TFLite). auto: normalized on TFLite, pixels on ONNX (settled by Manifest.for_runtime). SSD boxes
    # are always normalized (the TFLite op's own convention).
    box_units: Literal["auto", "pixels", "normalized"] = "auto"
    iou_threshold: float = 0.45
    max_detections: int = 100
    # Detection: candidates scoring below it are dropped before NMS (per-label raw maxima are kept whole).
    score_floor: float = 0.25


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_confidence: float = 0.0  # below it the decision is "uncertain" (raw scores are kept)
    per_label: dict[str, float] = field(default_factory=dict)
    anomaly: float = 0.5  # anomaly task: score above it is a defect


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: str
    task: Task
    file: str | dict[str, str]
    sha256: str | dict[str, str]
    input: InputSpec
    budget_ms: float
    labels: list[str] | None = None
    labels_file: str | None = None
    runtime: RuntimeKind | None = None
    output: OutputSpec = field(default_factory=OutputSpec)
    defect_labels: list[str] | None = None  # None: every label except the first ("ok") is a defect
    thresholds: Thresholds = field(default_factory=Thresholds)
    reference: dict[str, Any] | None = None
    golden: str | None = None
    description: str = ""

    def _check(self) -> Problems:
        problems: Problems = []
        if (self.labels is None) == (self.labels_file is None):
            problems.append(("labels", "give exactly one of labels or labels_file"))
        if isinstance(self.file, dict) != isinstance(self.sha256, dict):
            problems.append(("sha256", "file and sha256 must both be single values or both maps by runtime"))
        elif isinstance(self.file, dict) and isinstance(self.sha256, dict):
            if set(self.file) != set(self.sha256):
                problems.append(("sha256", "needs exactly the runtimes listed in file"))
            problems += [
                ("file", f"unknown runtime {k!r} (tflite or onnx)")
                for k in self.file
                if k not in SUFFIX_RUNTIME.values()
            ]
        if self.budget_ms <= 0:
            problems.append(("budget_ms", "must be greater than 0"))
        return problems

    def files(self) -> dict[RuntimeKind, tuple[str, str]]:
        """Model file and sha256 per runtime this package carries."""
        if isinstance(self.file, dict) and isinstance(self.sha256, dict):
            return {k: (v, self.sha256[k]) for k, v in self.file.items()}  # type: ignore[misc]
        assert isinstance(self.file, str) and isinstance(self.sha256, str)
        kind = self.runtime or SUFFIX_RUNTIME.get(Path(self.file).suffix.lower())
        if kind is None:
            raise ModelError(
                f"cannot tell the runtime of {self.file!r}: set runtime: tflite|onnx in the manifest"
            )
        return {kind: (self.file, self.sha256)}

    def for_runtime(self, kind: RuntimeKind) -> Manifest:
        """The manifest as one runtime's model reads it: ``output.box_units: auto`` settled.

        Ultralytics' TFLite export normalises boxes to 0..1 (to survive int8 quantization)
        while its ONNX export keeps input pixels, so one package carrying both needs both.
        """
        if self.output.box_units != "auto":
            return self
        units: Literal["pixels", "normalized"] = "normalized" if kind == "tflite" else "pixels"
        return replace(self, output=replace(self.output, box_units=units))


def read_manifest(path: Path) -> Manifest:
    """Parse and validate one manifest file; raise ModelError listing every problem."""
    try:
        doc = read_yaml(path)
    except ConfigError as exc:  # same messages, but for a model it is a ModelError
        raise ModelError(str(exc)) from exc
    if not isinstance(doc.data, dict):
        raise ModelError(f"{path}:1: manifest must be a mapping")
    manifest, problems = build(Manifest, doc.data, str(path), doc.line_of)
    problems = doc.problems + problems
    if problems or manifest is None:
        raise ModelError("; ".join(problems))
    return manifest
