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


def _class_block(samples: int, conf: list[float], brightness: float) -> dict[str, Any]:
    stats = copy.deepcopy(BLOCK["image_stats"])
    stats["brightness"]["mean"] = brightness
    return {"samples": samples, "top1_confidence": conf, "image_stats": stats}


def test_per_class_figures_are_used_where_a_class_has_enough_samples_else_the_pooled_ones() -> None:
    block = copy.deepcopy(BLOCK)
    block["by_class"] = {
        "ok": _class_block(400, [0.99, 0.95], 150.0),
        "scratch": _class_block(5, [0.6, 0.7], 90.0),  # too few to stand on its own
    }
    ref = parse_reference(block, ["ok", "scratch", "hole"])
    assert ref.per_class == ("ok",)
    ok, scratch, hole, other = ref.figures
    assert ok.confidence.tolist() == [0.95, 0.99] and ok.test_mean[0] == 150.0
    assert scratch is hole is other  # the pooled figures
    assert scratch.confidence.tolist() == [0.5, 0.7, 0.9]


def test_a_measured_log_sharpness_replaces_the_lognormal_fit() -> None:
    block = copy.deepcopy(BLOCK)
    fitted = parse_reference(block, ["ok"]).test_space
    block["image_stats"]["sharpness"] |= {"log_mean": 5.0, "log_std": 1.5}
    measured = parse_reference(block, ["ok"]).test_space
    assert measured[0][2] == 5.0 and measured[1][2] == 1.5
    assert fitted[0][2] == pytest.approx(np.log(200.0) - np.log1p(0.16) / 2)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"top1_confidence": [0.9, 0.8]}, "by_class.ok: missing key 'samples'"),
        ({"samples": 50, "top1_confidence": [0.9], "image_stats": BLOCK["image_stats"]}, "by_class.ok.top1"),
        ("many", "by_class.ok must be a mapping"),
    ],
)
def test_a_bad_by_class_entry_is_one_clear_model_error(entry: Any, message: str) -> None:
    block = copy.deepcopy(BLOCK) | {"by_class": {"ok": entry}}
    with pytest.raises(ModelError, match=message):
        parse_reference(block, ["ok", "scratch"])
