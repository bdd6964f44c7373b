"""Inference runtimes: one module per library, imported only when a model needs it."""

from __future__ import annotations

from pathlib import Path

from agent.config.schema import ModelConfig
from agent.runtimes.base import Runtime, RuntimeKind, TensorSpec

__all__ = ["Runtime", "TensorSpec", "open_runtime"]


def open_runtime(kind: RuntimeKind, model_file: Path, cfg: ModelConfig) -> Runtime:
    """Load ``model_file`` with the named runtime; raise ModelError / RuntimeMissingError."""
    if kind == "tflite":
        from agent.runtimes.tflite import TFLiteRuntime

        return TFLiteRuntime(model_file, threads=cfg.threads, delegates=cfg.delegates)
    from agent.runtimes.onnx import OnnxRuntime

    return OnnxRuntime(model_file, threads=cfg.threads, providers=cfg.providers)
