"""Detection outputs -> :class:`InferenceResult`: TFLite SSD postprocess tensors, raw YOLO tensors, or
the ``[1, N, 6]`` rows of an end-to-end head (YOLO26/YOLOv10, or an export with NMS built in).

Every format ends the same way: candidate boxes in model-input pixels, mapped back
through the preprocessing :class:`Transform` (stretch, letterbox or centre crop) to
0..1 positions in the original frame. YOLO and end-to-end boxes arrive in input pixels
(Ultralytics ONNX) or 0..1 of the input (Ultralytics TFLite): ``output.box_units``, settled
per runtime at load, says which. The decision rules (documented in docs/models.md):

* ``detections``: candidates scoring at least ``output.score_floor`` after class-aware
  NMS (raw YOLO only: the SSD op and an end-to-end head already chose), best first, at most
  ``output.max_detections``.
* ``scores``: per label, the highest raw score over *all* candidates, before any floor,
  so the sampler sees what the model saw.
* ``label``/``score``: the best detection; when there is none, ``"ok"`` with
  ``1 - (best raw score)``.
* ``is_defect``: some detection passes the :class:`Thresholder` (defect label, per-label floor).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import Manifest
from agent.model.postprocess.base import (
    ACTIVATIONS,
    Postprocessor,
    PostprocessorFactory,
    Thresholder,
    dequantize,
)
from agent.model.preprocess import Transform
from agent.model.result import Detection, InferenceResult
from agent.runtimes.base import TensorSpec

NOTHING_FOUND = "ok"
PRE_NMS_CAP = 4096  # keep NMS bounded on models with tens of thousands of anchors


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy non-maximum suppression over ``x1,y1,x2,y2`` boxes; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def class_aware_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float, limit: int
) -> np.ndarray:
    """NMS that never lets one class suppress another: each class is shifted to its own region."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (classes.astype(np.float32) * span)[:, np.newaxis]
    return nms(shifted, scores, iou_threshold, limit)


def map_boxes(xyxy: np.ndarray, transform: Transform) -> np.ndarray:
    """Model-input pixel boxes ``[n, 4]`` (x1, y1, x2, y2) -> 0..1 frame boxes (clipped)."""
    t = transform
    out = np.empty(xyxy.shape, np.float32)
    out[:, 0::2] = (xyxy[:, 0::2] - t.ox) / (t.sx * t.frame_w)
    out[:, 1::2] = (xyxy[:, 1::2] - t.oy) / (t.sy * t.frame_h)
    return np.clip(out, 0.0, 1.0)


def _xywh(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


_TO_XYXY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "xywh": _xywh,
    "xyxy": lambda b: b,
    "yxyx": lambda b: b[:, [1, 0, 3, 2]],
}


def input_scale(manifest: Manifest) -> np.ndarray:
    """Multiplier taking the model's boxes to input pixels: 1 for pixels, the input size for 0..1."""
    if manifest.output.box_units == "normalized":
        w, h = manifest.input.width, manifest.input.height
        return np.array([w, h, w, h], np.float32)
    return np.ones(4, np.float32)


class _Decider:
    """Turns final detections plus per-label raw maxima into the result (shared by both formats)."""

    def __init__(self, manifest: Manifest, labels: tuple[str, ...], defects: frozenset[str]) -> None:
        self.labels = labels
        self.thresholds = Thresholder(manifest, defects)

    def __call__(
        self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, per_label: np.ndarray
    ) -> InferenceResult:
        detections = tuple(
            Detection(self.labels[c], float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
            for b, s, c in zip(boxes, scores, classes.tolist(), strict=True)
        )
        best_raw = float(per_label.max()) if per_label.size else 0.0
        label, score = (
            (detections[0].label, detections[0].score) if detections else (NOTHING_FOUND, 1.0 - best_raw)
        )
        return InferenceResult(
            label=label,
            score=score,
            scores={name: float(v) for name, v in zip(self.labels, per_label, strict=True)},
            is_defect=any(self.thresholds.is_defect(d.label, d.score) for d in detections),
            detections=detections,
            raw=per_label,
        )


def _check_finite(*arrays: np.ndarray) -> None:
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ModelError("model output contains NaN or Inf")


class YoloPostprocessor:
    """Raw ``[1, 4(+1)+nc, N]`` or ``[1, N, 4(+1)+nc]``: best class per candidate, floor, class-aware NMS."""

    def __init__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> None:
        out = manifest.output
        self.spec = outputs[0]
        self.first = 5 if out.objectness else 4
        self.width = self.first + len(labels)
        self.channels_first = self._orientation(self.spec.shape, self.width, out.objectness, len(labels))
        if out.activation == "softmax":
            raise ModelError(
                "output.activation softmax is not supported for YOLO outputs (use none or sigmoid)"
            )
        self.activation = ACTIVATIONS[out.activation]
        self.to_xyxy = _TO_XYXY["xywh" if out.box_format == "auto" else out.box_format]
        self.scale = input_scale(manifest)
        self.floor, self.iou, self.limit = out.score_floor, out.iou_threshold, out.max_detections
        self.decide = _Decider(manifest, labels, defects)

    @staticmethod
    def _orientation(shape: tuple[int | None, ...], width: int, objectness: bool, nc: int) -> bool:
        if len(shape) != 3:
            raise ModelError(
                f"YOLO output has shape {shape}; [1, 4+classes, N] or [1, N, 4+classes] is needed"
            )
        if shape[1] == width and shape[2] != width:
            return True
        if shape[2] == width or (shape[2] is None and shape[1] is None):
            return False
        extra = "4 box values + objectness" if objectness else "4 box values"
        raise ModelError(
            f"YOLO output {shape} has no axis of size {width} ({extra} + {nc} labels): "
            "check the labels and output.objectness"
        )

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult:
        raw = dequantize(outputs[0], self.spec)[0]
        rows = raw.T if self.channels_first else raw
        if rows.shape[1] != self.width:
            raise ModelError(f"YOLO output rows have {rows.shape[1]} values, expected {self.width}")
        _check_finite(rows)
        cls = self.activation(rows[:, self.first :])
        if self.first == 5:
            cls = cls * self.activation(rows[:, 4:5])
        per_label = cls.max(axis=0) if cls.shape[0] else np.zeros(cls.shape[1], np.float32)
        best_cls = cls.argmax(axis=1)
        best = cls[np.arange(cls.shape[0]), best_cls]
        keep = np.flatnonzero(best >= self.floor)
        if keep.size > PRE_NMS_CAP:
            keep = keep[np.argpartition(-best[keep], PRE_NMS_CAP)[:PRE_NMS_CAP]]
        boxes = self.to_xyxy(rows[keep, :4]) * self.scale
        chosen = class_aware_nms(boxes, best[keep], best_cls[keep], self.iou, self.limit)
        return self.decide(
            map_boxes(boxes[chosen], transform), best[keep][chosen], best_cls[keep][chosen], per_label
        )


class SsdPostprocessor:
    """The four TFLite_Detection_PostProcess outputs: boxes, classes, scores, count (any order)."""

    def __init__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> None:
        self.specs = outputs
        self.boxes, self.classes, self.scores, self.count = ssd_roles(outputs)
        box_format = "yxyx" if manifest.output.box_format == "auto" else manifest.output.box_format
        self.to_xyxy = _TO_XYXY[box_format]
        w, h = manifest.input.width, manifest.input.height
        self.input_scale = np.array([w, h, w, h], np.float32)  # normalised input -> input pixels
        self.nlabels = len(labels)
        self.floor, self.limit = manifest.output.score_floor, manifest.output.max_detections
        self.decide = _Decider(manifest, labels, defects)

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult:
        values = [dequantize(o, s) for o, s in zip(outputs, self.specs, strict=True)]
        n = max(0, min(int(values[self.count].reshape(-1)[0]), values[self.scores].shape[-1]))
        boxes = values[self.boxes].reshape(-1, 4)[:n]
        classes, scores = values[self.classes].reshape(-1)[:n], values[self.scores].reshape(-1)[:n]
        _check_finite(boxes, classes, scores)
        if np.any(classes != np.rint(classes)) and np.all(scores == np.rint(scores)):
            classes, scores = scores, classes  # names did not tell them apart; the values do
        ids = classes.astype(np.int64)
        if n and (ids.min() < 0 or ids.max() >= self.nlabels):
            raise ModelError(
                f"model returned class index {int(ids.max())} but the manifest lists {self.nlabels} labels"
            )
        per_label = np.zeros(self.nlabels, np.float32)
        np.maximum.at(per_label, ids, scores)
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] >= self.floor][: self.limit]
        xyxy = self.to_xyxy(boxes[order]) * self.input_scale
        return self.decide(map_boxes(xyxy, transform), scores[order], ids[order], per_label)


class EndToEndPostprocessor:
    """``[1, N, 6]`` rows of x1, y1, x2, y2, score, class: the head already did NMS, so none here.

    Ultralytics' NMS-free heads (YOLO26, YOLOv10) and its ``nms=True`` exports pad the rows
    they did not fill with zeros; those fall under the score floor like any weak candidate.
    """

    def __init__(
        self,
        manifest: Manifest,
        labels: tuple[str, ...],
        outputs: tuple[TensorSpec, ...],
        defects: frozenset[str],
    ) -> None:
        self.spec = outputs[0]
        shape = self.spec.shape
        if len(outputs) != 1 or len(shape) != 3 or shape[2] not in (6, None):
            raise ModelError(
                f"an end-to-end detection output is one [1, N, 6] tensor (x1, y1, x2, y2, score, class); "
                f"this model has {', '.join(str(o.shape) for o in outputs)}"
            )
        out = manifest.output
        self.to_xyxy = _TO_XYXY["xyxy" if out.box_format == "auto" else out.box_format]
        self.scale = input_scale(manifest)
        self.nlabels = len(labels)
        self.floor, self.limit = out.score_floor, out.max_detections
        self.decide = _Decider(manifest, labels, defects)

    def __call__(self, outputs: list[np.ndarray], transform: Transform) -> InferenceResult:
        rows = dequantize(outputs[0], self.spec)[0]
        if rows.ndim != 2 or rows.shape[1] != 6:
            raise ModelError(f"end-to-end output rows have shape {rows.shape}, expected [N, 6]")
        _check_finite(rows)
        scores = rows[:, 4]
        ids = np.rint(rows[:, 5]).astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.nlabels):
            raise ModelError(
                f"model returned class index {int(ids.max())} but the manifest lists {self.nlabels} labels"
            )
        per_label = np.zeros(self.nlabels, np.float32)
        np.maximum.at(per_label, ids, scores)
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] >= self.floor][: self.limit]
        xyxy = self.to_xyxy(rows[order, :4]) * self.scale
        return self.decide(map_boxes(xyxy, transform), scores[order], ids[order], per_label)


def ssd_roles(outputs: tuple[TensorSpec, ...]) -> tuple[int, int, int, int]:
    """Indices of (boxes, classes, scores, count) among four outputs, by shape, then name, then order."""
    if len(outputs) != 4:
        raise ModelError(
            f"an SSD model has 4 outputs (boxes, classes, scores, count), this one has {len(outputs)}"
        )
    boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[-1] == 4]
    count = [i for i, o in enumerate(outputs) if len(o.shape) <= 1 or all(d == 1 for d in o.shape)]
    pair = [i for i in range(4) if i not in boxes + count]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        shapes = ", ".join(str(o.shape) for o in outputs)
        raise ModelError(
            f"cannot tell the SSD outputs apart (shapes {shapes}); boxes [1,N,4] and count [1] are needed"
        )

    def rank(i: int) -> tuple[int, int, int]:
        name = outputs[i].name.lower()
        suffix = re.search(r":(\d+)$", name)
        kind = 0 if "class" in name else 2 if "score" in name else 1
        return kind, int(suffix.group(1)) if suffix else 0, i

    classes, scores = sorted(pair, key=rank)  # the op's own order is boxes, classes, scores, count
    return boxes[0], classes, scores, count[0]


def _looks_end_to_end(manifest: Manifest, nlabels: int, spec: TensorSpec) -> bool:
    """``[1, N, 6]`` that cannot be a raw YOLO tensor of this many labels (which would be 4(+1)+nc wide)."""
    raw_width = (5 if manifest.output.objectness else 4) + nlabels
    return len(spec.shape) == 3 and spec.shape[2] == 6 and raw_width != 6 and spec.shape[1] != raw_width


_FORMATS: dict[str, PostprocessorFactory] = {
    "ssd": SsdPostprocessor,
    "yolo": YoloPostprocessor,
    "end2end": EndToEndPostprocessor,
}


def choose_format(
    manifest: Manifest, labels: tuple[str, ...], outputs: tuple[TensorSpec, ...], defects: frozenset[str]
) -> Postprocessor:
    """SSD for four outputs, end-to-end for one ``[1, N, 6]`` tensor, YOLO for one raw tensor, unless the
    manifest names the format (``end2end`` must be named for a 2-label model: its raw tensor is 6 wide too).
    """
    fmt = manifest.output.format
    if fmt == "auto" and len(outputs) == 4:
        fmt = "ssd"
    elif fmt == "auto" and len(outputs) == 1:
        fmt = "end2end" if _looks_end_to_end(manifest, len(labels), outputs[0]) else "yolo"
    if fmt not in _FORMATS:
        raise ModelError(
            f"detection output.format {fmt!r} with {len(outputs)} outputs: use ssd (4 outputs), "
            "yolo (one raw tensor) or end2end (one [1, N, 6] tensor)"
        )
    return _FORMATS[fmt](manifest, labels, outputs, defects)


create: PostprocessorFactory = choose_format
