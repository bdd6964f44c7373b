"""Augmentation: a freshly changed copy of the training images every epoch (flips, rotation, light, crop).

Plain numpy/OpenCV on uint8 model-size images, seeded per epoch, so a run is repeatable
and nothing of it ends up in the exported graph.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.train.config import AugmentConfig


def symmetries(images: np.ndarray, rng: np.random.Generator, transpose: bool) -> np.ndarray:
    """Each image flipped (and transposed, when square and asked for) at random: 4 or 8 symmetries."""
    out = images.copy()
    kinds = 8 if transpose and images.shape[1] == images.shape[2] else 4
    ops = rng.integers(0, kinds, len(images))
    for k in range(1, kinds):
        sel = ops == k
        if not sel.any():
            continue
        view = out[sel]
        if k & 1:
            view = view[:, :, ::-1]
        if k & 2:
            view = view[:, ::-1, :]
        if k & 4:
            view = view.transpose(0, 2, 1, *range(3, view.ndim))
        out[sel] = view
    return np.asarray(out)


def _geometry(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Small rotation and a crop resized back, in one affine warp (edges replicated, no black corners)."""
    h, w = image.shape[:2]
    angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    zoom = 1.0 / (1.0 - float(rng.uniform(0.0, cfg.crop))) if cfg.crop > 0 else 1.0
    shift = rng.uniform(-0.5, 0.5, 2) * (zoom - 1.0) * np.array([w, h]) / zoom
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, zoom)
    matrix[:, 2] += shift
    warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return warped.reshape(image.shape)


def augment(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """A changed copy of ``images`` (N, H, W, C) uint8; the labels stay valid."""
    out = symmetries(images, rng, cfg.transpose) if cfg.flip else images.copy()
    if cfg.rotate_deg > 0 or cfg.crop > 0:
        for i in range(len(out)):
            out[i] = _geometry(out[i], rng, cfg)
    if cfg.brightness > 0 or cfg.contrast > 0:
        n = len(out)
        gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast, n).astype(np.float32)
        offset = 255.0 * rng.uniform(-cfg.brightness, cfg.brightness, n).astype(np.float32)
        shaped = (-1,) + (1,) * (out.ndim - 1)
        x = (out.astype(np.float32) - 127.5) * gain.reshape(shaped) + 127.5 + offset.reshape(shaped)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out
