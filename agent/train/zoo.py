"""Starting points when no base model exists yet, built here because nothing may be downloaded.

``mobilenet`` builds a MobileNet v1 with random weights (0.8 M parameters at width 0.5,
3.2 M at 1.0; fewer blocks for tests). ``synthetic_folder`` writes
rendered conveyor parts (agent.synthetic) as an image folder, the shape ``dataset export``
writes, so tests, the benchmark and the docs can run the whole loop offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.synthetic import render_part
from agent.train import backend

# MobileNet v1: (filters, stride) of its 13 depthwise-separable blocks after a 32-filter stride-2 stem.
MOBILENET_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip
BN_MOMENTUM = 0.9  # Keras' 0.99 leaves the statistics near their start after a few hundred steps


def mobilenet(input_shape: tuple[int, int, int], classes: int, alpha: float = 1.0, blocks: int = 13) -> Any:
    """MobileNet v1 (width ``alpha``, first ``blocks`` blocks), untrained, with a softmax head.

    3.2 M parameters at alpha 1.0, 0.8 M at 0.5, so it stands in for the models lines
    really run. Global max pooling beside average pooling, because a defect covers a few
    percent of the frame and its strongest response is what matters.
    """
    keras = backend.keras()
    layers = keras.layers

    def bn_relu(x: Any) -> Any:
        return layers.ReLU(6.0)(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))

    inputs = keras.Input(input_shape, name="image")
    x = bn_relu(layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False)(inputs))
    for filters, stride in MOBILENET_BLOCKS[:blocks]:
        x = bn_relu(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x))
        x = bn_relu(layers.Conv2D(int(filters * alpha), 1, use_bias=False)(x))
    x = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    outputs = layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_{alpha}_{blocks}")


def synthetic_folder(
    root: Path,
    labels: Sequence[str],
    per_class: int,
    size: tuple[int, int],
    seed: int,
    *,
    suffix: str = ".png",
    split: bool = False,
) -> Path:
    """``root/LABEL/NAME`` images (or ``root/{train,val,test}/LABEL/NAME`` like an export, ids as names).

    Each frame comes from its own generator seeded by ``(seed, label, index)``; names are
    unique across seeds, so two folders made with different seeds never share an id.
    """
    for label in labels:
        for i in range(per_class):
            rng = np.random.default_rng([seed, sum(map(ord, label)), i])
            image = render_part(rng, label, *size)
            part = ("train", "val", "test")[i % 7 // 5 + (i % 7 == 6)] if split else ""
            target = root / part / label / f"s{seed}-{label}-{i:05d}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), image)
    return root


def pretrain(
    data: Path,
    labels: Sequence[str],
    target: Path,
    *,
    size: int = 64,
    alpha: float = 0.5,
    blocks: int = 5,
    epochs: int = 10,
    seed: int = 0,
) -> Path:
    """Train :func:`mobilenet` from scratch on an image folder (grey, ``size`` px) and save it as .keras.

    What a base from another task looks like: tests and the benchmark start from it.
    """
    from agent.model.manifest import InputSpec
    from agent.train.config import TrainConfig
    from agent.train.data import load, scan
    from agent.train.model import fit, save

    spec = InputSpec(width=size, height=size, color="GRAY")
    samples, _ = load(scan(Path(data)), spec, tuple(labels))
    order = np.random.default_rng(seed).permutation(len(samples))
    cut = len(order) * 85 // 100
    backend.set_determinism(seed)
    model = mobilenet((size, size, 1), len(labels), alpha=alpha, blocks=blocks)
    cfg = TrainConfig(epochs=epochs, freeze_epochs=0, learning_rate=3e-3, patience=epochs, seed=seed)
    fit(model, model, (samples.subset(order[:cut]), samples.subset(order[cut:])), cfg, spec)
    save(model, Path(target))
    return Path(target)
