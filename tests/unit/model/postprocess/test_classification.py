"""Classification postprocessing: activation, the best label decides, per-label floors, checks at load."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import ModelError
from agent.model.postprocess.classification import ClassificationPostprocessor
from agent.model.preprocess import Transform
from agent.runtimes.base import TensorSpec
from tests.unit.model.postprocess.manifests import manifest

LABELS = ("ok", "scratch", "dent")
T = Transform(64, 64, 1.0, 1.0, 0.0, 0.0)
F32 = np.dtype(np.float32)


def post(spec: TensorSpec, **overrides: object) -> ClassificationPostprocessor:
    m = manifest("classification", LABELS, **overrides)
    return ClassificationPostprocessor(m, LABELS, (spec,), frozenset({"scratch", "dent"}))


def test_softmax_scores_every_label_and_the_best_decides() -> None:
    p = post(TensorSpec("o", (1, 3), F32), output={"activation": "softmax"})
    result = p([np.array([[0.0, 2.0, 0.0]], np.float32)], T)
    assert result.label == "scratch" and result.is_defect
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert result.scores["scratch"] == pytest.approx(result.score) and result.score > 0.7


def test_per_label_floor_keeps_the_label_but_not_the_defect() -> None:
    p = post(TensorSpec("o", (1, 3), F32), thresholds={"per_label": {"dent": 0.9}})
    result = p([np.array([[0.1, 0.1, 0.8]], np.float32)], T)
    assert (result.label, result.is_defect) == ("dent", False)  # raw scores stay whole
    assert result.scores == pytest.approx({"ok": 0.1, "scratch": 0.1, "dent": 0.8})


def test_uint8_outputs_are_dequantized_with_the_tensors_own_parameters() -> None:
    p = post(TensorSpec("o", (1, 3), np.dtype(np.uint8), 1 / 255, 0))
    result = p([np.array([[255, 0, 0]], np.uint8)], T)
    assert (result.label, result.is_defect) == ("ok", False) and result.score == pytest.approx(1.0)


def test_label_count_is_checked_at_load_and_per_frame() -> None:
    with pytest.raises(ModelError, match="4 output classes but the manifest lists 3 labels"):
        post(TensorSpec("o", (1, 4), F32))
    dynamic = post(TensorSpec("o", (1, None), F32))
    with pytest.raises(ModelError, match="2 values for 3 labels"):
        dynamic([np.zeros((1, 2), np.float32)], T)


def test_nan_output_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="NaN or Inf"):
        post(TensorSpec("o", (1, 3), F32))([np.array([[0.1, np.nan, 0.2]], np.float32)], T)
