"""Each policy's condition on the raw scores."""

from __future__ import annotations

import random

from agent.config.observers import SamplingPolicyConfig
from agent.model.result import InferenceResult
from agent.sampling.policies import always, classes, drifting, low_confidence, make_policy, near_threshold
from tests.unit.sampling.helpers import result


def test_low_confidence_band_and_margin() -> None:
    band = SamplingPolicyConfig(enabled=True, min_score=0.3, max_score=0.9)
    assert low_confidence(band, result(0.6), False)
    assert not low_confidence(band, result(0.95), False)
    margin = SamplingPolicyConfig(enabled=True, min_score=0.0, max_score=0.0, margin=0.2)
    close = InferenceResult("ok", 0.45, {"ok": 0.45, "a": 0.40, "b": 0.15}, False)
    assert low_confidence(margin, close, False)
    assert not low_confidence(margin, result(0.95), False)


def test_low_confidence_reads_raw_scores_not_the_floored_decision() -> None:
    # the decision after a confidence floor says "uncertain" with score 0, the raw scores say 0.6
    floored = InferenceResult("uncertain", 0.0, {"ok": 0.6, "scratch": 0.4}, False)
    assert low_confidence(SamplingPolicyConfig(enabled=True), floored, False)


def test_near_threshold_watches_defect_labels_only() -> None:
    cfg = SamplingPolicyConfig(enabled=True, threshold=0.5, delta=0.05)
    assert near_threshold(cfg, result(0.52, label="ok"), False)  # scratch = 0.48
    assert not near_threshold(cfg, result(0.9, label="ok"), False)
    ok_only = InferenceResult("ok", 0.5, {"ok": 0.5, "scratch": 0.1, "dent": 0.4}, False)
    assert not near_threshold(cfg, ok_only, False)  # 'ok' is the first label: not watched
    chosen = SamplingPolicyConfig(enabled=True, threshold=0.4, delta=0.01, labels=["dent"])
    assert near_threshold(chosen, ok_only, False)


def test_classes_random_and_drift() -> None:
    cfg = SamplingPolicyConfig(enabled=True, labels=["scratch"])
    assert classes(cfg, result(0.9, label="scratch"), False)
    assert not classes(cfg, result(0.9), False)
    assert always(cfg, result(0.9), False)
    assert drifting(cfg, result(0.9), True) and not drifting(cfg, result(0.9), False)


def test_rate_is_deterministic_for_a_seed_and_close_to_the_rate() -> None:
    def fired(seed: int) -> list[bool]:
        cfg = SamplingPolicyConfig(enabled=True, rate=0.1)
        policy = make_policy("random", cfg, lambda: 0.0, random.Random(seed))
        return [policy.matches(result(0.99), False) for _ in range(5000)]

    first = fired(7)
    assert first == fired(7)
    assert 400 < sum(first) < 600
