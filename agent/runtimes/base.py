"""The small interface every inference runtime implements.

A runtime loads one model file and runs ready tensors. It knows nothing about
images, labels or tasks: preprocessing and postprocessing live in ``agent.model``.
Quantization parameters come from the model itself and are exposed here so
pre/postprocessing can (de)quantize without any extra settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

# The runtimes this package can load, named here (the lower layer) so the model package
# can refer to them without runtimes ever importing agent.model.
RuntimeKind = Literal["tflite", "onnx"]
SUFFIX_RUNTIME: dict[str, RuntimeKind] = {".tflite": "tflite", ".onnx": "onnx"}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Shape (``None`` for a dynamic dimension), dtype and quantization of one tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[np.generic]
    scale: float = 0.0  # 0.0: not quantized
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


class Runtime(Protocol):
    """A loaded model that runs tensors."""

    name: RuntimeKind

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def set_input_shape(self, shape: tuple[int, ...]) -> None:
        """Fix dynamic input dimensions (sizes come from the manifest); a no-op when static."""
        ...

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one input tensor (already the input's dtype and shape); return every output."""
        ...

    def close(self) -> None: ...
