"""What the tensors alone say: layout, size and channels of the image input, and the input range an
integer-quantized input was calibrated for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.errors import ModelError
from agent.runtimes.base import TensorSpec


@dataclass(frozen=True, slots=True)
class ImageInput:
    layout: str  # NHWC or NCHW
    width: int
    height: int
    channels: int


def image_input(spec: TensorSpec, size: tuple[int, int] | None = None) -> ImageInput:
    """Layout from where the channel axis (1 or 3) sits; ``size`` (w, h) fills dynamic dimensions."""
    shape = spec.shape
    if len(shape) != 4:
        raise ModelError(f"input {spec.name} has shape {list(shape)}; an image model takes a 4-D tensor")
    nchw = shape[1] in (1, 3) and shape[3] not in (1, 3)
    c, h, w = (shape[1], shape[2], shape[3]) if nchw else (shape[3], shape[1], shape[2])
    if h is None or w is None:
        if size is None:
            raise ModelError(f"input {spec.name} has a dynamic size {list(shape)}: give --input-size WxH")
        w, h = size
    return ImageInput("NCHW" if nchw else "NHWC", int(w), int(h), int(c or 3))


def quantized_range(spec: TensorSpec) -> tuple[float, float] | None:
    """The float values an integer input's 0 and 255 pixel stand for, from its scale and zero point.

    Edge Impulse's int8 input (scale 1/255, zero point -128) was calibrated on 0..1; Teachable
    Machine's uint8 input (scale 1/128, zero point 128) on -1..1.
    """
    if not spec.quantized:
        return None
    info = np.iinfo(spec.dtype.type)  # type: ignore[type-var]
    lo = (int(info.min) - spec.zero_point) * spec.scale
    hi = (int(info.max) - spec.zero_point) * spec.scale
    return float(lo), float(hi)


def range_to_input(lo: float, hi: float) -> dict[str, object]:
    """Manifest ``scale``/``mean`` mapping pixel 0 -> ``lo`` and 255 -> ``hi`` (value = x * scale - mean)."""
    return {"scale": round((hi - lo) / 255.0, 9), "mean": [round(-lo, 6)], "std": [1.0]}
