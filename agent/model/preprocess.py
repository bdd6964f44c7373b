"""Frame -> input tensor, decided once per model from its manifest and its real input tensor.

The per-frame path is a handful of OpenCV/numpy calls with no branching on settings:
one resize straight from the camera frame to the model's input size (stretch, letterbox or
centre crop; OpenCV releases the GIL), colour conversion, one fused multiply-add for
scale/mean/std and quantization (precomputed as a 256-entry table per channel and applied with
cv2.LUT where the tensor type allows), layout, batch axis. Nothing is converted to float at frame
size, and the float scratch and the input tensor are allocated once per preprocessor: the tensor a
call returns is overwritten by the next call unless the caller passes its own ``out`` tensor (the
pipeline prepares frames on the capture thread, one pooled tensor per job in flight: ``fork()``
gives that thread its own preprocessor).
A BGR->RGB swap commutes exactly with the resize, so it runs on the small image; BGR->GRAY
stays first (the resize then works on one channel, and the reference order is kept; resizing
the three channels first measured slower). A frame at least 4x the input on both axes is first
halved (an exact 2x2 box average, OpenCV's integer fast path) and then area-resized: on
640x480 -> 96x96 that is 4x cheaper than one non-integer INTER_AREA, within 2 grey levels of
it (issue 20; accuracy measured with ``model evaluate``, README "Measured").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from agent.errors import ModelError
from agent.model.manifest import InputSpec
from agent.runtimes.base import TensorSpec


@dataclass(frozen=True, slots=True)
class Transform:
    """Affine map from frame pixels to model-input pixels: ``input = frame * scale + offset``."""

    frame_w: int
    frame_h: int
    sx: float
    sy: float
    ox: float
    oy: float

    def to_frame_normalised(self, x: float, y: float) -> tuple[float, float]:
        """A model-input pixel position as a 0..1 position in the original frame (clipped)."""
        fx = (x - self.ox) / self.sx / self.frame_w
        fy = (y - self.oy) / self.sy / self.frame_h
        return min(max(fx, 0.0), 1.0), min(max(fy, 0.0), 1.0)


_COLOR: dict[str, int | None] = {"BGR": None, "RGB": cv2.COLOR_BGR2RGB, "GRAY": cv2.COLOR_BGR2GRAY}


class Preprocessor:
    """Callable turning a BGR uint8 frame into the model's input tensor plus its :class:`Transform`."""

    def __init__(self, spec: InputSpec, tensor: TensorSpec) -> None:
        self.spec = spec
        self.tensor = tensor
        self.shape = self._shape(spec, tensor)
        convert = _COLOR[spec.color]
        self._convert = convert if spec.color == "GRAY" else None  # before the resize
        self._swap = convert if spec.color == "RGB" else None  # after it, on the small image
        self._resize = _RESIZERS[spec.resize]
        self._finish = _normaliser(spec, tensor)
        self._buf = self.new_tensor()
        self.view: np.ndarray | None = None

    @staticmethod
    def _shape(spec: InputSpec, tensor: TensorSpec) -> tuple[int, ...]:
        want = (1, spec.height, spec.width, spec.channels)
        if spec.layout == "NCHW":
            want = (1, spec.channels, spec.height, spec.width)
        if len(tensor.shape) != 4:
            raise ModelError(
                f"model input {tensor.name} has shape {tensor.shape}; a 4-D image tensor is needed"
            )
        for have, need in zip(tensor.shape, want, strict=True):
            if have is not None and have != need:
                raise ModelError(
                    f"manifest input {spec.layout} {want} does not match the model's input {tensor.shape} "
                    "(check width/height/color/layout)"
                )
        return want

    def new_tensor(self) -> np.ndarray:
        """An input tensor of this model's shape and type, for :meth:`__call__`'s ``out``."""
        return np.empty(self.shape, self.tensor.dtype)

    def fork(self) -> Preprocessor:
        """An independent preprocessor for the same model, for another thread (own scratch and view)."""
        return Preprocessor(self.spec, self.tensor)

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, Transform]:
        """The input tensor (written into ``out``, else into this preprocessor's own buffer, which
        the next call overwrites) and the transform. Not thread-safe: one thread per instance."""
        image = frame if self._convert is None else cv2.cvtColor(frame, self._convert)
        resized, transform = self._resize(image, self.spec)
        if self._swap is not None:
            resized = cv2.cvtColor(resized, self._swap)
        self.view = resized  # the last frame at input size and colour; read by the same thread right after
        return self._finish(resized, self._buf if out is None else out), transform


def _shrink(image: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """``cv2.resize`` to ``size``; a big downscale by area goes through one exact halving first."""
    h, w = image.shape[:2]
    if interp == cv2.INTER_AREA and w >= 4 * size[0] and h >= 4 * size[1] and not (w | h) & 1:
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=interp)


def _stretch(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Transform]:
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if w >= spec.width else cv2.INTER_LINEAR
    out = _shrink(image, (spec.width, spec.height), interp)
    return out, Transform(w, h, spec.width / w, spec.height / h, 0.0, 0.0)


def _letterbox(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Transform]:
    h, w = image.shape[:2]
    s = min(spec.width / w, spec.height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    inner = _shrink(image, (nw, nh), interp)
    left, top = (spec.width - nw) // 2, (spec.height - nh) // 2
    fill = [spec.letterbox_fill] * (1 if image.ndim == 2 else 3)
    out = cv2.copyMakeBorder(
        inner, top, spec.height - nh - top, left, spec.width - nw - left, cv2.BORDER_CONSTANT, value=fill
    )
    return out, Transform(w, h, nw / w, nh / h, float(left), float(top))


def _center_crop(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Transform]:
    h, w = image.shape[:2]
    s = max(spec.width / w, spec.height / h)
    cw, ch = min(w, round(spec.width / s)), min(h, round(spec.height / s))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out = _shrink(crop, (spec.width, spec.height), interp)
    sx, sy = spec.width / cw, spec.height / ch
    return out, Transform(w, h, sx, sy, -x0 * sx, -y0 * sy)


_RESIZERS: dict[str, Callable[[np.ndarray, InputSpec], tuple[np.ndarray, Transform]]] = {
    "stretch": _stretch,
    "letterbox": _letterbox,
    "center_crop": _center_crop,
}


def _normaliser(spec: InputSpec, tensor: TensorSpec) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """One fused ``x * a + b`` (scale, mean, std and input quantization folded together), then layout."""
    channels = spec.channels
    std = np.resize(np.asarray(spec.std, np.float32), channels)
    mean = np.resize(np.asarray(spec.mean, np.float32), channels)
    a = spec.scale / std
    b = -mean / std
    dtype = tensor.dtype
    integer = np.issubdtype(dtype, np.integer)
    if tensor.quantized:
        a, b = a / tensor.scale, b / tensor.scale + tensor.zero_point
    info = np.iinfo(dtype.type) if integer else None  # type: ignore[type-var]
    lo, hi = (info.min, info.max) if info is not None else (0, 0)
    a_, b_ = a.astype(np.float32), b.astype(np.float32)
    identity = integer and dtype == np.uint8 and np.all(a_ == 1) and np.all(b_ == 0)
    nchw = spec.layout == "NCHW"
    hwc_shape = (spec.height, spec.width, channels)
    scratch = np.empty(hwc_shape, np.float32)  # allocated once: the float image at input size

    def hwc_view(buf: np.ndarray) -> np.ndarray:
        first: np.ndarray = buf[0]
        return first.transpose(1, 2, 0) if nchw else first  # the tensor seen as HWC

    def finish(image: np.ndarray, buf: np.ndarray) -> np.ndarray:
        hwc, target = image.reshape(hwc_shape), hwc_view(buf)
        if identity:
            np.copyto(target, hwc)
            return buf
        np.multiply(hwc, a_, out=scratch)
        np.add(scratch, b_, out=scratch)
        if integer:
            np.rint(scratch, out=scratch)
            np.clip(scratch, lo, hi, out=scratch)
        np.copyto(target, scratch, casting="unsafe")
        return buf

    if identity or dtype not in _LUT_DTYPES:
        return finish
    # The map is per channel on uint8 input: compute it once for 0..255 with the same float32
    # operations, then each frame is one table look-up (cv2.LUT, GIL released): 224x224x3 int8
    # in 45 us instead of 510 (issue 20). Equal value for value (tests/unit/model/test_preprocess.py).
    table = np.multiply(np.arange(256, dtype=np.uint8)[:, None], a_, dtype=np.float32)
    np.add(table, b_, out=table)
    if integer:
        np.rint(table, out=table)
        np.clip(table, lo, hi, out=table)
    lut = table.astype(dtype).reshape((256, 1, channels) if channels > 1 else (256,))

    def look_up(image: np.ndarray, buf: np.ndarray) -> np.ndarray:
        np.copyto(hwc_view(buf), cv2.LUT(image, lut).reshape(hwc_shape))
        return buf

    return look_up


_LUT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32))  # what cv2.LUT writes
