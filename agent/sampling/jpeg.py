"""The sampler's JPEG encoder: the largest, best image that fits one MQTT message."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_MIN_SIDE = 32
_MIN_QUALITY = 40


@dataclass(frozen=True, slots=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    quality: int


def fit_jpeg(image: np.ndarray, quality: int, max_side: int, budget: int) -> Jpeg | None:
    """Encode ``image`` no larger than ``max_side`` and ``budget`` bytes: lower the quality down to
    40 first, then the size; None when even a 32-pixel image does not fit."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = image if scale >= 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= budget:
            return Jpeg(np.asarray(buf).tobytes(), size[0], size[1], quality)
        if quality > _MIN_QUALITY:
            quality = max(_MIN_QUALITY, quality - 15)
        elif max(size) * 0.75 >= _MIN_SIDE:
            scale *= 0.75
        else:
            return None
