"""Anomaly postprocessing: a scalar score or a map (max), optional sigmoid, the anomaly threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.errors import ModelError
from agent.model.postprocess.anomaly import AnomalyPostprocessor
from agent.model.preprocess import Transform
from agent.runtimes.base import TensorSpec
from tests.unit.model.postprocess.manifests import manifest

T = Transform(8, 8, 1.0, 1.0, 0.0, 0.0)
F32 = np.dtype(np.float32)


def post(
    shape: tuple[int, ...],
    dtype: np.dtype[Any] = F32,
    labels: tuple[str, ...] = ("normal", "anomaly"),
    scale: float = 0.0,
    zero: int = 0,
    **overrides: Any,
) -> AnomalyPostprocessor:
    m = manifest("anomaly", labels, input={"width": 8, "height": 8}, **overrides)
    return AnomalyPostprocessor(m, labels, (TensorSpec("o", shape, dtype, scale, zero),), frozenset())


def test_scalar_score_above_threshold_is_a_defect() -> None:
    p = post((1, 1), thresholds={"anomaly": 0.6})
    high = p([np.array([[0.7]], np.float32)], T)
    assert (high.label, high.is_defect, high.anomaly_score) == ("anomaly", True, pytest.approx(0.7))
    assert high.scores == pytest.approx({"normal": 0.3, "anomaly": 0.7})
    low = p([np.array([[0.2]], np.float32)], T)
    assert (low.label, low.is_defect, low.score) == ("normal", False, pytest.approx(0.8))


def test_map_score_is_its_maximum_and_the_map_is_kept() -> None:
    m = np.zeros((1, 4, 4, 1), np.float32)
    m[0, 2, 3, 0] = 0.9
    result = post((1, 4, 4, 1))([m], T)
    assert result.anomaly_score == pytest.approx(0.9) and result.is_defect
    assert result.raw is not None and result.raw.shape == (1, 4, 4, 1)


def test_sigmoid_and_uint8_dequantization() -> None:
    p = post((1,), np.dtype(np.uint8), scale=0.1, zero=100, output={"activation": "sigmoid"})
    result = p([np.array([100], np.uint8)], T)  # dequantized 0 -> sigmoid 0.5
    assert result.anomaly_score == pytest.approx(0.5) and result.is_defect  # threshold 0.5 inclusive


def test_label_count_and_formats_are_checked_at_load() -> None:
    with pytest.raises(ModelError, match="exactly 2 labels"):
        post((1,), labels=("a", "b", "c"))
    with pytest.raises(ModelError, match="single value"):
        post((1, 4), output={"format": "score"})
    with pytest.raises(ModelError, match="not an anomaly format"):
        post((1,), output={"format": "yolo"})


def test_nan_and_empty_outputs_are_model_errors() -> None:
    with pytest.raises(ModelError, match="NaN or Inf"):
        post((1, 2))([np.array([[0.1, np.inf]], np.float32)], T)
    with pytest.raises(ModelError, match="empty"):
        post((1, None))([np.zeros((1, 0), np.float32)], T)
