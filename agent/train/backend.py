"""The one place TensorFlow/Keras are imported: lazily, with the extra to install when they are missing."""

from __future__ import annotations

import os
from types import ModuleType

from agent.errors import RuntimeMissingError

EXTRA_HINT = "pip install 'edge-inspection-agent[train]'"


def _missing(name: str, exc: ImportError) -> RuntimeMissingError:
    return RuntimeMissingError(
        f"training needs {name}, which is not installed ({exc.name or name}); install the train extra: "
        f"{EXTRA_HINT}"
    )


def keras() -> ModuleType:
    """Keras 3 (with TensorFlow as its backend); TF's C++ start-up chatter is silenced first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # fatal only; failures still raise
    try:
        import keras as keras_module
        import tensorflow  # noqa: F401  (the backend keras runs on)
    except ImportError as exc:
        raise _missing("TensorFlow/Keras", exc) from exc
    return keras_module


def tensorflow() -> ModuleType:
    keras()
    import tensorflow as tf

    return tf


def onnx_tools() -> tuple[ModuleType, ModuleType]:
    """(onnx, onnxruntime.quantization) for the QDQ export."""
    try:
        import onnx
        import onnxruntime.quantization as quantization
    except ImportError as exc:
        raise _missing("onnx and onnxruntime", exc) from exc
    return onnx, quantization


def set_determinism(seed: int) -> None:
    """Same seed, same weights: seeds Python, numpy and TF, and asks TF for deterministic kernels."""
    keras().utils.set_random_seed(seed)
    tensorflow().config.experimental.enable_op_determinism()
