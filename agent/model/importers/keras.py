"""A Keras ``.keras`` (or legacy ``.h5``) model converted to TFLite with TensorFlow (the ``train`` extra).

Converted once, on the workstation: devices never need TensorFlow. A ``Rescaling`` layer at
the start means the model takes raw 0..255 pixels, which the manifest then says.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

from agent.errors import ModelError, RuntimeMissingError, first_line
from agent.model.importers.classifier import KerasFacts


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise RuntimeMissingError(
            "importing a Keras model needs TensorFlow to convert it to TFLite "
            "(install the extra: pip install 'edge-inspection-agent[train]')"
        ) from exc
    return tf


def convert(path: Path, work: Path) -> tuple[Path, KerasFacts, str]:
    """(the TFLite file written in ``work``, what the model said about its input, TF's version)."""
    tf = _tensorflow()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel's endpoints
            model = tf.keras.models.load_model(path, compile=False)
            flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as exc:  # Keras/TF raise many unrelated types for an unreadable model
        raise ModelError(f"cannot convert {path.name} with TensorFlow: {first_line(exc)[:200]}") from exc
    target = work / f"{path.stem}.tflite"
    target.write_bytes(bytes(flat))
    return target, _facts(model), str(tf.__version__)


def _facts(model: Any) -> KerasFacts:
    for layer in model.layers[:3]:
        if type(layer).__name__ == "Rescaling":
            cfg = layer.get_config()
            return KerasFacts(True, f"Rescaling(scale={cfg.get('scale')}, offset={cfg.get('offset')})")
    return KerasFacts(False, "")
