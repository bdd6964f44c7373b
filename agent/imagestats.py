"""Image statistics shared by the training script (reference) and the device (drift).

Both sides must compute them identically, so they live here and nowhere else.
They are computed on the grayscale image at the model's input size: cheap, and
independent of the camera's resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

STAT_NAMES = ("brightness", "contrast", "sharpness")


def image_stats(gray: np.ndarray) -> tuple[float, float, float]:
    """Mean brightness (0..255), contrast (std of gray levels) and sharpness (variance of the Laplacian)."""
    mean, std = cv2.meanStdDev(gray)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))  # 10x cheaper than ndarray.var()
    return float(mean[0, 0]), float(std[0, 0]), float(lap_std[0, 0]) ** 2
