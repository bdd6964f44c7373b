"""Augmentation, imbalance, metrics, progress, report images, config: the parts around the training loop."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import ConfigError, RuntimeMissingError
from agent.train import backend
from agent.train.augment import augment
from agent.train.config import AugmentConfig, load_train_config
from agent.train.metrics import int8_drop, metrics
from agent.train.model import class_weights, epoch_indices
from agent.train.progress import Progress
from agent.train.report import plot_confusion, plot_curves


def test_augmentation_changes_images_but_not_their_shape_or_type() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    out = augment(images, np.random.default_rng(1), AugmentConfig())
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    again = augment(images, np.random.default_rng(1), AugmentConfig())
    assert np.array_equal(out, again)  # seeded: a run is repeatable


def test_no_augmentation_leaves_images_alone() -> None:
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    off = AugmentConfig(flip=False, rotate_deg=0, brightness=0, contrast=0, crop=0)
    assert np.array_equal(augment(images, np.random.default_rng(1), off), images)


def test_class_weights_favour_the_rare_class() -> None:
    weights = class_weights(np.array([0] * 90 + [1] * 10), 2)
    assert weights == {0: pytest.approx(100 / 180, abs=1e-4), 1: 5.0}  # n / (classes * count)


def test_oversampling_draws_every_class_as_often_as_the_largest() -> None:
    order = epoch_indices(np.array([0] * 90 + [1] * 10), np.random.default_rng(0), oversample=True)
    labels = np.array([0] * 90 + [1] * 10)[order]
    assert (labels == 0).sum() == (labels == 1).sum() == 90


def test_metrics_and_the_int8_gap() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = metrics(probs, np.array([0, 1, 1, 1]), ("ok", "hole"))
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 0], [1, 2]]
    assert m["per_class"]["hole"]["recall"] == pytest.approx(0.6667) and m["defect_recall"] == pytest.approx(
        0.6667
    )
    results = {"float": {"accuracy": 0.9}, "tflite_int8": {"accuracy": 0.88}, "onnx_int8": {"accuracy": 0.86}}
    assert int8_drop(results) == 0.04


def test_progress_prints_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress("training", 3, stream, every_s=0.0)
    for done in (1, 2, 3):
        bar.update(done, f"loss {done}")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("training: 1/3 (") and lines[0].endswith("loss 1")
    assert "\r" not in stream.getvalue() and lines[-1].startswith("training: 3/3 in ")


def test_progress_redraws_a_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = Progress("training", 4, stream)
    bar.update(2)
    assert "\rtraining [" + "#" * 15 + "-" * 15 + "] 2/4" in stream.getvalue()


def test_report_images_are_written(tmp_path: Path) -> None:
    history = [{"loss": 1.0 / e, "val_loss": 1.2 / e, "accuracy": 0.5 + e / 20, "val_accuracy": 0.4 + e / 20}
               for e in range(1, 6)]  # fmt: skip
    plot_curves(history, tmp_path / "curves.png")
    plot_confusion([[5, 1], [2, 7]], ("ok", "hole"), tmp_path / "cm.png", "tflite_int8")
    for name in ("curves.png", "cm.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.std() > 10


def test_the_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 0\nsplit: [80, 10, 5]\nmax_int8_dorp: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    text = str(err.value)
    assert "max_int8_dorp" in text and "epochs: must be at least 1" in text and "split:" in text


def test_missing_tensorflow_names_the_train_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed
    with pytest.raises(
        RuntimeMissingError, match=r"install the train extra: pip install 'edge-inspection-agent\[train\]'"
    ):
        backend.keras()
