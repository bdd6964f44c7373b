"""Transfer learning: keep the base model's feature extractor, give it a new head, train with early stopping.

The base is the user's own Keras model (``.keras``/``.h5``), or a package this command
wrote earlier (it ships ``training/float.keras``). Nothing is downloaded: a base that is
not on disk is an error. Training runs the head alone first (the extractor frozen, its
batch-norm statistics kept), then fine-tunes everything at a lower rate.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.model.manifest import InputSpec
from agent.train import backend
from agent.train.augment import augment
from agent.train.config import TrainConfig
from agent.train.data import Samples

FLOAT_MODEL = "training/float.keras"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
HEAD_DROPOUT = "head_dropout"  # the head this module adds; cut off again when its output is retrained


@dataclass(frozen=True, slots=True)
class Base:
    """The base model's feature extractor and what it expects."""

    features: Any  # keras.Model: image -> feature vector
    input_shape: tuple[int, int, int]  # (height, width, channels)
    path: Path
    params: int


def base_file(path: Path) -> Path:
    """The Keras file behind ``path`` (a file, or a package directory that ships its float model)."""
    if not path.exists():
        raise ModelError(
            f"base model {path} does not exist (nothing is downloaded: give a Keras .keras/.h5 file "
            "or a package written by `inspection-agent train`)"
        )
    if path.is_dir():
        shipped = path / FLOAT_MODEL
        if not shipped.is_file():
            raise ModelError(
                f"package {path} ships no float model ({FLOAT_MODEL}); "
                "give the Keras file it was trained from"
            )
        return shipped
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ModelError(f"base model {path.name}: expected a Keras file ({', '.join(KERAS_SUFFIXES)})")
    return path


def load_base(path: Path) -> Base:
    """Load the Keras model and cut off its classification head (its last Dense layer)."""
    keras = backend.keras()
    source = base_file(path)
    try:
        model = keras.models.load_model(source, compile=False)
    except Exception as exc:  # Keras raises many kinds; all mean "not loadable"
        raise ModelError(
            f"base model {source}: cannot load it with Keras: {str(exc).splitlines()[0]}"
        ) from exc
    heads = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not heads:
        raise ModelError(f"base model {source}: no Dense classification head to replace")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ModelError(f"base model {source}: input shape {shape} is not a fixed (height, width, channels)")
    names = {layer.name for layer in model.layers}
    cut = model.get_layer(HEAD_DROPOUT).input if HEAD_DROPOUT in names else heads[-1].input
    features = keras.Model(model.inputs, cut, name="features")
    return Base(features, (int(shape[0]), int(shape[1]), int(shape[2])), source, int(model.count_params()))


def with_new_head(base: Base, classes: int, dropout: float) -> Any:
    """image -> frozen-statistics extractor -> dropout -> softmax over the current labels."""
    keras = backend.keras()
    inputs = keras.Input(base.input_shape, name="image")
    x = base.features(inputs, training=False)  # batch norm stays in inference mode, even when fine-tuned
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=HEAD_DROPOUT)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="retrained")


def to_input(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> float32 (N, H, W, C): ``(x * scale - mean) / std``, as the agent feeds it."""
    x = images if images.ndim == 4 else images[..., None]
    channels = x.shape[-1]
    mean = np.resize(np.asarray(spec.mean, np.float32), channels)
    std = np.resize(np.asarray(spec.std, np.float32), channels)
    return np.asarray((x.astype(np.float32) * np.float32(spec.scale) - mean) / std, np.float32)


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Inverse frequency, normalised to mean 1: each class weighs the same in the loss."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    present = counts > 0
    weights = np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {c: round(float(w), 4) for c, w in enumerate(weights)}


def epoch_indices(labels: np.ndarray, rng: np.random.Generator, oversample: bool) -> np.ndarray:
    """Training order for one epoch; with ``oversample`` every class drawn up to the largest one's count."""
    if not oversample:
        return rng.permutation(len(labels))
    counts = np.bincount(labels)
    top = int(counts.max())
    parts = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(labels == c)
        parts.append(np.concatenate([members, rng.choice(members, top - len(members))]))
    return rng.permutation(np.concatenate(parts))


def compile_model(model: Any, rate: float, steps: int) -> None:
    keras = backend.keras()
    schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, steps), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


EpochHook = Callable[[dict[str, Any]], None]


def fit(
    model: Any,
    extractor: Any,
    splits: tuple[Samples, Samples],
    cfg: TrainConfig,
    spec: InputSpec,
    *,
    on_epoch: EpochHook | None = None,
) -> list[dict[str, Any]]:
    """Head first, then fine-tune; stop when validation loss has not improved for ``patience`` epochs.

    Returns one record per epoch; the model is left with the weights of the best epoch.
    """
    train, val = splits
    rng = np.random.default_rng([cfg.seed, 11])
    weights = class_weights(train.labels, len(train.names)) if cfg.imbalance == "class_weight" else None
    val_x = to_input(val.images, spec)
    per_epoch = math.ceil(
        len(epoch_indices(train.labels, rng, cfg.imbalance == "oversample")) / cfg.batch_size
    )
    history: list[dict[str, Any]] = []
    best: tuple[float, list[Any]] = (math.inf, model.get_weights())
    for epoch in range(cfg.epochs):
        if epoch in (0, cfg.freeze_epochs):
            frozen = epoch < cfg.freeze_epochs
            extractor.trainable = not frozen
            phase_epochs = cfg.freeze_epochs if frozen else cfg.epochs - cfg.freeze_epochs
            rate = cfg.learning_rate if frozen or cfg.freeze_epochs == 0 else cfg.fine_tune_rate
            compile_model(model, rate, phase_epochs * per_epoch)
        started = time.monotonic()
        order = epoch_indices(train.labels, rng, cfg.imbalance == "oversample")
        x = to_input(augment(train.images[order], rng, cfg.augment), spec)
        fitted = model.fit(
            x, train.labels[order], batch_size=cfg.batch_size, epochs=1, verbose=0, class_weight=weights
        )
        val_loss, val_acc = model.evaluate(val_x, val.labels, batch_size=256, verbose=0)
        record = {
            "epoch": epoch + 1,
            "phase": "head" if epoch < cfg.freeze_epochs else "fine_tune",
            "loss": round(float(fitted.history["loss"][-1]), 5),
            "accuracy": round(float(fitted.history["accuracy"][-1]), 5),
            "val_loss": round(float(val_loss), 5),
            "val_accuracy": round(float(val_acc), 5),
            "seconds": round(time.monotonic() - started, 2),
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val_loss < best[0]:
            best = (float(val_loss), model.get_weights())
        elif epoch + 1 - _best_epoch(history) >= cfg.patience:
            record["stopped_early"] = True
            break
    model.set_weights(best[1])
    return history


def _best_epoch(history: list[dict[str, Any]]) -> int:
    return int(min(history, key=lambda r: r["val_loss"])["epoch"])


def predict(model: Any, images: np.ndarray, spec: InputSpec) -> np.ndarray:
    return np.asarray(model.predict(to_input(images, spec), batch_size=256, verbose=0), dtype=np.float64)


def save(model: Any, path: Path) -> None:
    """The float model as .keras, the base of the next retrain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # Keras' numpy conversion warns about numpy 2's copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
