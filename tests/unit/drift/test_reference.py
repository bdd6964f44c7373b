from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from agent.drift.reference import parse_reference
from agent.errors import ModelError

BLOCK: dict[str, Any] = {
    "split": "validation",
    "samples": 500,
    "top1_confidence": [0.9, 0.5, 0.7],
    "class_mix": {"ok": 0.5, "scratch": 0.5},
    "image_stats": {
        "brightness": {"mean": 120.0, "std": 30.0},
        "contrast": {"mean": 40.0, "std": 10.0},
        "sharpness": {"mean": 200.0, "std": 80.0},
    },
}


def test_a_valid_block_becomes_sorted_arrays_and_normalised_shares() -> None:
    ref = parse_reference(BLOCK, ["ok", "scratch", "hole"])
    assert ref.confidence.tolist() == [0.5, 0.7, 0.9]
    assert ref.labels == ("ok", "scratch", "hole")
    assert ref.mix.tolist() == [0.5, 0.5, 0.0, 0.0]  # the last share is "(other)"
    assert ref.image_mean.tolist() == [120.0, 40.0, 200.0]
    assert ref.samples == 500


def test_the_configured_class_mix_replaces_the_reference_mix() -> None:
    ref = parse_reference(BLOCK, ["ok", "scratch"], {"ok": 9, "scratch": 1})
    assert np.allclose(ref.mix, [0.9, 0.1, 0.0])


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("top1_confidence",), None, "missing key 'top1_confidence'"),
        (("image_stats", "sharpness"), None, "missing key 'sharpness'"),
        (("top1_confidence",), [0.5], "at least 2 finite numbers"),
        (("top1_confidence",), ["high", "low"], "malformed value"),
        (("image_stats", "contrast", "std"), 0.0, "std > 0"),
        (("class_mix",), {"ok": -1.0}, "must be >= 0"),
        (("class_mix",), {"ok": "most"}, "must be numbers"),
    ],
)
def test_a_bad_block_is_one_clear_model_error(path: tuple[str, ...], value: Any, message: str) -> None:
    block = copy.deepcopy(BLOCK)
    target = block
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ModelError, match=message):
        parse_reference(block, ["ok", "scratch"])
