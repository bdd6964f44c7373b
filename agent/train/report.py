"""The training report: learning curves and confusion matrix as PNG (drawn with OpenCV), plus report.json.

OpenCV is already a dependency of the agent, so the report needs no plotting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.train.package import dumps

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
TRAIN_COLOUR, VAL_COLOUR = (200, 90, 30), (30, 120, 230)  # BGR: blue train, orange validation
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL = (420, 300)  # width, height of one plot panel
MARGIN = 50


def _text(img: np.ndarray, text: str, at: tuple[int, int], scale: float = 0.45, colour: Any = BLACK) -> None:
    cv2.putText(img, text, at, FONT, scale, colour, 1, cv2.LINE_AA)


def _panel(title: str, series: dict[str, list[float]], colours: Sequence[Any]) -> np.ndarray:
    """One line plot with axes, y range from the data, epoch numbers on x, a legend."""
    w, h = PANEL
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = MARGIN, 30, w - 15, h - 35
    values = [v for s in series.values() for v in s]
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    hi = hi if hi > lo else lo + 1.0
    n = max((len(s) for s in series.values()), default=1)
    cv2.rectangle(img, (x0, y0), (x1, y1), BLACK, 1)
    for k in range(5):
        y = y1 - (y1 - y0) * k // 4
        cv2.line(img, (x0, y), (x1, y), GREY, 1)
        _text(img, f"{lo + (hi - lo) * k / 4:.2f}", (4, y + 4), 0.38)
    for e in range(n):
        x = x0 + (x1 - x0) * e // max(1, n - 1)
        _text(img, str(e + 1), (x - 4, y1 + 16), 0.38)
    for ys, colour in zip(series.values(), colours, strict=False):
        pts = [
            (x0 + (x1 - x0) * e // max(1, n - 1), int(y1 - (y1 - y0) * (v - lo) / (hi - lo)))
            for e, v in enumerate(ys)
        ]
        cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
    _text(img, title, (x0, 20), 0.55)
    for k, (name, colour) in enumerate(zip(series, colours, strict=False)):
        _text(img, name, (x1 - 110, y0 + 18 + 16 * k), 0.42, colour)
    _text(img, "epoch", ((x0 + x1) // 2 - 20, h - 4), 0.4)
    return img


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, training and validation side by side."""
    colours = (TRAIN_COLOUR, VAL_COLOUR)
    loss = _panel(
        "loss", {"train": [r["loss"] for r in history], "val": [r["val_loss"] for r in history]}, colours
    )
    acc = _panel(
        "accuracy",
        {"train": [r["accuracy"] for r in history], "val": [r["val_accuracy"] for r in history]},
        colours,
    )
    cv2.imwrite(str(path), np.hstack([loss, acc]))


def plot_confusion(matrix: list[list[int]], names: Sequence[str], path: Path, title: str) -> None:
    """Rows true label, columns predicted; each cell shaded by its share of the row, count written in."""
    cm = np.asarray(matrix, np.int64)
    k, cell, left, top = len(names), 56, 110, 60
    img = np.full((top + cell * k + 20, left + cell * k + 20, 3), 255, np.uint8)
    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for i in range(k):
        _text(img, names[i][:12], (6, top + cell * i + cell // 2 + 5))
        _text(img, names[i][:6], (left + cell * i + 4, top - 8), 0.4)
        for j in range(k):
            share = cm[i, j] / rows[i, 0]
            shade = int(255 - 200 * share)
            corner = (left + cell * j, top + cell * i)
            cv2.rectangle(img, corner, (corner[0] + cell, corner[1] + cell), (255, shade, shade), -1)
            cv2.rectangle(img, corner, (corner[0] + cell, corner[1] + cell), GREY, 1)
            colour = WHITE if share > 0.6 else BLACK
            _text(img, str(cm[i, j]), (corner[0] + 8, corner[1] + cell // 2 + 5), 0.5, colour)
    _text(img, f"{title} (rows: true, columns: predicted)", (6, 20), 0.45)
    cv2.imwrite(str(path), img)


def write_report(directory: Path, report: dict[str, Any], names: Sequence[str]) -> list[Path]:
    """report.json, curves.png and one confusion_<variant>.png per evaluated model."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(dumps(report))
    written = [directory / "report.json", directory / "curves.png"]
    plot_curves(report["history"], written[1])
    for variant, result in report["evaluation"].items():
        target = directory / f"confusion_{variant}.png"
        plot_confusion(result["confusion_matrix"], names, target, f"{variant}, test split")
        written.append(target)
    return written
