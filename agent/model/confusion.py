"""The confusion matrix as a PNG picture, drawn with OpenCV (already a dependency; no plotting library).

Rows are the true classes, columns the predicted ones; each cell shows its count and is
shaded by its share of the row, so a weak class reads as a pale diagonal cell at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from agent.errors import AgentError

CELL = 64
FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str = "") -> np.ndarray:
    """A BGR image of the matrix with labelled axes."""
    counts = np.asarray(matrix, np.int64)
    n = len(labels)
    margin = 12 + 9 * max((len(k) for k in labels), default=4)
    top = margin + 28
    image = np.full((top + n * CELL + 30, margin + n * CELL + 10, 3), 255, np.uint8)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    for i in range(n):
        for j in range(n):
            x, y = margin + j * CELL, top + i * CELL
            shade = int(255 - 200 * shares[i, j])
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)  # red off-diagonal, green on it
            cv2.rectangle(image, (x, y), (x + CELL - 2, y + CELL - 2), colour, -1)
            text = str(counts[i, j])
            (w, h), _ = cv2.getTextSize(text, FONT, 0.5, 1)
            cv2.putText(image, text, (x + (CELL - w) // 2, y + (CELL + h) // 2), FONT, 0.5, (0, 0, 0), 1)
    for k, label in enumerate(labels):
        cv2.putText(image, label, (4, top + k * CELL + CELL // 2 + 4), FONT, 0.4, (0, 0, 0), 1)
        column = np.full((CELL, margin - 4, 3), 255, np.uint8)
        cv2.putText(column, label, (2, CELL // 2 + 4), FONT, 0.4, (0, 0, 0), 1)
        rotated = cv2.rotate(column, cv2.ROTATE_90_COUNTERCLOCKWISE)
        image[28 : 28 + margin - 4, margin + k * CELL : margin + (k + 1) * CELL] = rotated
    cv2.putText(image, title or "true (rows) x predicted (columns)", (4, 18), FONT, 0.45, (0, 0, 0), 1)
    return image


def write_confusion_png(
    path: Path, labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str = ""
) -> None:
    ok, buf = cv2.imencode(".png", render_confusion(labels, matrix, title))
    if not ok:
        raise AgentError(f"{path}: could not encode the confusion matrix as PNG")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise AgentError(f"{path}: cannot write the confusion matrix ({exc.strerror})") from exc
