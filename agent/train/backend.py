"""The one place TensorFlow/Keras are imported: lazily, with the extra to install when they are missing."""

from __future__ import annotations

import importlib
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
        importlib.import_module("tensorflow")  # the backend Keras runs on
        return importlib.import_module("keras")
    except ImportError as exc:
        raise _missing("TensorFlow/Keras", exc) from exc


def tensorflow() -> ModuleType:
    keras()
    return importlib.import_module("tensorflow")


def onnx_tools() -> tuple[ModuleType, ModuleType]:
    """(onnx, onnxruntime.quantization) for the QDQ export."""
    try:
        return importlib.import_module("onnx"), importlib.import_module("onnxruntime.quantization")
    except ImportError as exc:
        raise _missing("onnx and onnxruntime", exc) from exc


def set_determinism(seed: int) -> None:
    """Same seed, same weights: seeds Python, numpy and TF, and asks TF for deterministic kernels."""
    keras().utils.set_random_seed(seed)
    tensorflow().config.experimental.enable_op_determinism()
