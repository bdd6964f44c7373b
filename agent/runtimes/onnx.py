"""onnxruntime runtime with a configured provider list (CPU by default; CUDA/TensorRT on Jetson)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent.errors import ModelError, RuntimeMissingError, first_line
from agent.runtimes.base import RuntimeKind, TensorSpec

log = structlog.get_logger(__name__)

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeMissingError(
            "onnxruntime is not installed (install the extra: pip install 'edge-inspection-agent[onnx]'; "
            "on Jetson use NVIDIA's onnxruntime-gpu wheel)"
        ) from exc
    return onnxruntime


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    if arg.type not in _DTYPES:
        raise ModelError(f"ONNX tensor {arg.name} has unsupported type {arg.type}")
    return TensorSpec(arg.name, shape, np.dtype(_DTYPES[arg.type]))


class OnnxRuntime:
    name: RuntimeKind = "onnx"

    def __init__(self, model_file: Path, *, threads: int = 1, providers: list[str] | None = None) -> None:
        ort = _import_ort()
        wanted = providers or ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        usable = [p for p in wanted if p in available]
        missing = [p for p in wanted if p not in available]
        if not usable:
            raise RuntimeMissingError(
                f"none of the configured onnxruntime providers is installed: {', '.join(wanted)} "
                f"(available: {', '.join(sorted(available))})"
            )
        if missing:
            log.warning("onnx_providers_unavailable", missing=missing, using=usable)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_file), sess_options=options, providers=usable)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
            raise ModelError(f"{model_file.name} is not a loadable ONNX model: {first_line(exc)}") from exc
        self.providers = tuple(self._session.get_providers())
        ins = self._session.get_inputs()
        if len(ins) != 1:
            raise ModelError(f"{model_file.name} has {len(ins)} inputs; one image input is supported")
        self._in_name = ins[0].name
        self.inputs = tuple(_spec(a) for a in ins)
        self.outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._out_names = [o.name for o in self.outputs]

    def set_input_shape(self, shape: tuple[int, ...]) -> None:
        """onnxruntime accepts any size for a dynamic dimension at run time."""

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return list(self._session.run(self._out_names, {self._in_name: tensor}))

    def close(self) -> None:
        self._session = None
