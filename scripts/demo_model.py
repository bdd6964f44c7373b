"""The demo model: its network, and how the demo scripts hand their data to :mod:`agent.train`.

Training, int8 export, runners and metrics are agent.train's (the same code
``inspection-agent train`` runs); only the demo's own small CNN is defined here.
TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.model.manifest import InputSpec
from agent.synthetic import LABELS
from agent.train.config import AugmentConfig, TrainConfig
from agent.train.data import Samples
from scripts.demo_data import INPUT_SIZE, SCALE, Dataset

SPEC = InputSpec(width=INPUT_SIZE, height=INPUT_SIZE, color="GRAY", scale=SCALE)
# Defects have no preferred orientation: all 8 symmetries of the square, nothing else.
AUGMENT = AugmentConfig(flip=True, transpose=True, rotate_deg=0, brightness=0, contrast=0, crop=0)


def build_model(num_classes: int) -> Any:
    """A small CNN for 96x96 gray inputs in 0..1 (no Rescaling layer: the manifest's scale does that).

    Global max pooling next to average pooling, because a defect covers a few
    percent of the frame and its strongest response is what matters.
    """
    from agent.train import backend

    keras = backend.keras()
    layers = keras.layers

    def conv_bn_relu(x: Any, filters: int, strides: int = 1) -> Any:
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)  # few steps per run: let the statistics settle fast
        return layers.ReLU()(x)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="image")
    x = layers.MaxPooling2D()(conv_bn_relu(inputs, 16, strides=2))  # 24x24
    x = layers.MaxPooling2D()(conv_bn_relu(x, 32))  # 12x12
    x = layers.MaxPooling2D()(conv_bn_relu(x, 48))  # 6x6
    x = conv_bn_relu(x, 64)
    x = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="demo_defects")


def samples(ds: Dataset) -> Samples:
    """A demo dataset as agent.train's samples (a channel axis added; sources double as ids)."""
    return Samples(ds.images[..., None], ds.labels, ds.sources, ds.sources, ds.sources, LABELS)


def train(
    model: Any, train_set: Dataset, val_set: Dataset, *, epochs: int, batch_size: int, seed: int
) -> None:
    """From scratch (nothing frozen), Adam with cosine decay, no early stop; keeps the best epoch."""
    from agent.train.model import fit

    cfg = TrainConfig(
        seed=seed, epochs=epochs, freeze_epochs=0, batch_size=batch_size, learning_rate=3e-3,
        patience=epochs, imbalance="none", augment=AUGMENT,
    )  # fmt: skip

    def report(r: dict[str, Any]) -> None:
        print(f"epoch {r['epoch']}/{epochs}: loss {r['loss']:.4f} val_loss {r['val_loss']:.4f} "
              f"val_accuracy {r['val_accuracy']:.4f}")  # fmt: skip

    fit(model, model, (samples(train_set), samples(val_set)), cfg, SPEC, on_epoch=report)


def predict_float(model: Any, images: np.ndarray) -> np.ndarray:
    from agent.train.model import predict

    return predict(model, images, SPEC)
