"""LiteRT / TFLite runtime.

Interpreter sources, first found wins: ``ai_edge_litert`` (LiteRT, works with numpy 2),
``tflite_runtime`` (its predecessor; the last release, 2.14, needs numpy < 2),
``tensorflow.lite`` (the full TensorFlow). XNNPACK runs int8 and float models on
the CPU with ``threads``; delegates such as a Coral's ``libedgetpu.so.1`` are loaded by name.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent.errors import ModelError, RuntimeMissingError, first_line
from agent.runtimes.base import RuntimeKind, TensorSpec

log = structlog.get_logger(__name__)

_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")
_NATIVE_INFO = b"INFO: Created TensorFlow Lite"


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """The C++ library writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    fd 2 for every interpreter, past Python's logging, so every command printed it. For the
    interpreter's construction only, fd 2 goes to a temporary file; afterwards that line becomes a
    debug event and anything else (another thread's output, a real error) is written back unchanged."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 to redirect (closed, or an embedding without one)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
    rest = [line for line in lines if not line.startswith(_NATIVE_INFO)]
    # Into the agent's log at debug; a one-shot command (`model info`) configures no log, and
    # structlog's default would print it after all.
    for line in lines if structlog.is_configured() else []:
        if line.startswith(_NATIVE_INFO):
            log.debug("tflite_native_info", message=line.decode(errors="replace").strip())
    if rest:
        os.write(2, b"".join(rest))


def _import_interpreter() -> Any:
    failures = []
    for name in _MODULES:
        try:
            return importlib.import_module(name)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}")
    raise RuntimeMissingError(
        "no TFLite runtime is installed (install the extra: pip install 'edge-inspection-agent[tflite]'; "
        f"tried {', '.join(failures)})"
    )


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), float(scale), int(zero_point))


class TFLiteRuntime:
    name: RuntimeKind = "tflite"

    def __init__(self, model_file: Path, *, threads: int = 1, delegates: list[str] | None = None) -> None:
        module = _import_interpreter()
        loaded = [self._delegate(module, d) for d in delegates or []]
        try:
            with native_stderr_to_log():
                self._interp = module.Interpreter(
                    model_path=str(model_file), num_threads=threads, experimental_delegates=loaded or None
                )
                # A dynamic input is allocated by set_input_shape at its real size: its placeholder
                # size (often 1x1) may be too small for the graph and fail to prepare.
                self._allocated = not any(int(d) < 0 for d in self._signature(self._interp))
                if self._allocated:
                    self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{model_file.name} is not a loadable TFLite model: {first_line(exc)}") from exc
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        if len(self._in) != 1:
            raise ModelError(f"{model_file.name} has {len(self._in)} inputs; one image input is supported")
        self._in_index = self._in[0]["index"]
        self._out_index = [d["index"] for d in self._out]
        self.inputs = tuple(_spec(d) for d in self._in)
        self.outputs = tuple(_spec(d) for d in self._out)

    @staticmethod
    def _delegate(module: Any, name: str) -> Any:
        load = getattr(module, "load_delegate", None)
        if load is None:
            raise RuntimeMissingError(f"this TFLite runtime cannot load delegates (wanted {name})")
        try:
            return load(name)
        except (ValueError, OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load TFLite delegate {name}: {first_line(exc)}") from exc

    @staticmethod
    def _signature(interp: Any) -> Any:
        detail = interp.get_input_details()[0]
        return detail.get("shape_signature", detail["shape"])

    def set_input_shape(self, shape: tuple[int, ...]) -> None:
        if self._allocated and tuple(self._interp.get_input_details()[0]["shape"]) == shape:
            return
        try:
            self._interp.resize_tensor_input(self._in_index, list(shape), strict=True)
            with native_stderr_to_log():
                self._interp.allocate_tensors()
            self._allocated = True
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot set TFLite input shape {shape}: {first_line(exc)}") from exc

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._interp.set_tensor(self._in_index, tensor)
        self._interp.invoke()
        # get_tensor copies, so the results stay valid after the next invoke.
        return [self._interp.get_tensor(i) for i in self._out_index]

    def close(self) -> None:
        self._interp = None
