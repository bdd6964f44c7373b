"""The live view's picture: the frame scaled for a screen, with the model's input region and result drawn.

Runs on the console's own thread, on a frame the pipeline has finished with; the resize makes
the copy that is drawn on, so the pipeline's frame is never written to.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.model.manifest import InputSpec
from agent.model.result import InferenceResult

PREVIEW_MAX_W = 800
THUMB_W = 200
GREEN, RED, AMBER = (60, 170, 40), (40, 40, 210), (0, 190, 255)


def scaled(image: np.ndarray, max_w: int) -> np.ndarray:
    """A BGR copy at most ``max_w`` wide (always a copy, even when no resize is needed)."""
    h, w = image.shape[:2]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    out: np.ndarray
    if w <= max_w:
        out = image.copy()
    else:
        out = cv2.resize(image, (max_w, max(1, round(h * max_w / w))), interpolation=cv2.INTER_AREA)
    return out


def input_region(spec: InputSpec, w: int, h: int) -> tuple[int, int, int, int]:
    """The part of a w x h frame the model sees (x0, y0, x1, y1): a centre crop, or the whole frame."""
    if spec.resize != "center_crop":
        return 0, 0, w, h
    s = max(spec.width / w, spec.height / h)
    cw, ch = min(w, round(spec.width / s)), min(h, round(spec.height / s))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return x0, y0, x0 + cw, y0 + ch


def annotate(image: np.ndarray, result: InferenceResult, spec: InputSpec) -> np.ndarray:
    """The frame for the live view: input region, anomaly map, boxes, and a label banner."""
    return annotate_in_place(scaled(image, PREVIEW_MAX_W), result, spec)


def annotate_in_place(out: np.ndarray, result: InferenceResult, spec: InputSpec) -> np.ndarray:
    """Draw on ``out`` (a preview-sized copy) and return it."""
    h, w = out.shape[:2]
    x0, y0, x1, y1 = input_region(spec, w, h)
    if result.anomaly_score is not None and result.raw is not None and result.raw.ndim >= 2:
        _heat(out, result.raw, (x0, y0, x1, y1))
    if (x0, y0, x1, y1) != (0, 0, w, h):
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), AMBER, 2)
    for d in result.detections:
        bx0, by0, bx1, by1 = (round(v * s) for v, s in zip(d.box, (w, h, w, h), strict=True))
        colour = RED if result.is_defect else GREEN
        cv2.rectangle(out, (bx0, by0), (bx1, by1), colour, 2)
        cv2.putText(out, f"{d.label} {d.score:.2f}", (bx0 + 2, max(14, by0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, colour, 1, cv2.LINE_AA)  # fmt: skip
    _banner(out, result)
    return out


def _banner(out: np.ndarray, result: InferenceResult) -> None:
    text = f"{'DEFECT ' if result.is_defect else ''}{result.label} {result.score:.2f}"
    scale = max(0.6, out.shape[1] / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(out, (0, 0), (tw + 16, th + base + 12), RED if result.is_defect else GREEN, -1)
    cv2.putText(out, text, (8, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)


def _heat(out: np.ndarray, raw: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Blend the anomaly map (normalised to its own range) over the region the model saw."""
    x0, y0, x1, y1 = box
    amap = np.squeeze(raw).astype(np.float32)
    if amap.ndim != 2 or x1 <= x0 or y1 <= y0:
        return
    lo, hi = float(amap.min()), float(amap.max())
    norm = ((amap - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(amap)).astype(np.uint8)
    colour = cv2.applyColorMap(cv2.resize(norm, (x1 - x0, y1 - y0)), cv2.COLORMAP_JET)
    region = out[y0:y1, x0:x1]
    cv2.addWeighted(colour, 0.4, region, 0.6, 0, dst=region)


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError("JPEG encoding failed")
    return bytes(data)
