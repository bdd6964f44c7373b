"""Small real media for the capture tests: MJPG videos and PNG folders written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.config.schema import CameraConfig


def camera(source: str, **overrides: object) -> CameraConfig:
    """A camera config as load_config would build it, with test-friendly overrides."""
    return CameraConfig(source=source, **overrides)  # type: ignore[arg-type]


def gray(value: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def write_video(path: Path, values: list[int], fps: float = 25.0, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPG AVI whose frame i is uniformly ``values[i]`` gray, so order survives compression."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for value in values:
        writer.write(gray(value, *size))
    writer.release()
    return path


def write_images(folder: Path, values: list[int], suffix: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"img_{i:03d}{suffix}" for i in range(len(values))]
    for name, value in zip(names, values, strict=True):
        assert cv2.imwrite(str(folder / name), gray(value))
    return names


def mean(image: np.ndarray) -> float:
    return float(image.mean())
