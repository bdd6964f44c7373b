"""Sampling policies: which frames are worth sending for retraining, each with its own rate and quota.

A policy is its config (frozen; replaced as a whole by ``set-sampling``), a condition on the
raw scores, a rate and a quota. The conditions only read ``InferenceResult`` (raw scores,
before any confidence floor), so they cost a few dictionary lookups per frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.config.observers import SamplingConfig, SamplingPolicyConfig
from agent.model.result import InferenceResult
from agent.sampling.quota import Clock, Quota

POLICY_NAMES = ("low_confidence", "near_threshold", "classes", "random", "drift", "disagreement")
# Policies another observer offers frames to (Sampler.offer) instead of a per-frame condition:
# ``disagreement`` gets the frames where the shadow model and the active one differ.
OFFERED = frozenset({"disagreement"})
SNAPSHOT = "snapshot"  # the reason of a frame sampled on command
Condition = Callable[[SamplingPolicyConfig, InferenceResult, bool], bool]


def low_confidence(cfg: SamplingPolicyConfig, result: InferenceResult, _drift: bool) -> bool:
    """Top raw score inside [min_score, max_score], or the two best scores closer than ``margin``."""
    scores = result.scores
    if not scores:
        return False
    top = max(scores.values())
    if cfg.min_score <= top <= cfg.max_score:
        return True
    return cfg.margin > 0.0 and result.top2_margin < cfg.margin


def near_threshold(cfg: SamplingPolicyConfig, result: InferenceResult, _drift: bool) -> bool:
    """A watched (defect) label's raw score within ±delta of the defect threshold."""
    scores = result.scores
    labels = cfg.labels or list(scores)[1:]
    lo, hi = cfg.threshold - cfg.delta, cfg.threshold + cfg.delta
    return any(lo <= scores.get(label, -1.0) <= hi for label in labels)


def classes(cfg: SamplingPolicyConfig, result: InferenceResult, _drift: bool) -> bool:
    """The predicted label is one of ``labels`` (rare classes worth collecting)."""
    return result.label in cfg.labels


def always(_cfg: SamplingPolicyConfig, _result: InferenceResult, _drift: bool) -> bool:
    """The unbiased baseline: every frame is a candidate, ``rate`` decides."""
    return True


def drifting(_cfg: SamplingPolicyConfig, _result: InferenceResult, drift: bool) -> bool:
    """Only while a drift alarm is on."""
    return drift


def offered_only(_cfg: SamplingPolicyConfig, _result: InferenceResult, _drift: bool) -> bool:
    """Never on its own: the frames come through ``Sampler.offer`` (see OFFERED)."""
    return False


CONDITIONS: dict[str, Condition] = {
    "low_confidence": low_confidence,
    "near_threshold": near_threshold,
    "classes": classes,
    "random": always,
    "drift": drifting,
    "disagreement": offered_only,
}


@dataclass(slots=True)
class Policy:
    """One policy's live settings, its quota and how often it fired."""

    name: str
    config: SamplingPolicyConfig
    quota: Quota
    condition: Condition
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def matches(self, result: InferenceResult, drift: bool) -> bool:
        """Condition, then the rate draw: the quota is checked by the caller."""
        if not self.condition(self.config, result, drift):
            return False
        return self.draw()

    def draw(self) -> bool:
        """The rate draw alone (for frames offered to the policy: their condition already held)."""
        rate = self.config.rate
        return rate >= 1.0 or self.rng.random() < rate


def build_policies(cfg: SamplingConfig, clock: Clock, rng: random.Random) -> dict[str, Policy]:
    """Every policy, enabled or not (set-sampling can enable one at run time)."""
    return {name: make_policy(name, getattr(cfg, name), clock, rng) for name in POLICY_NAMES}


def make_policy(name: str, cfg: SamplingPolicyConfig, clock: Clock, rng: random.Random) -> Policy:
    return Policy(name, cfg, Quota(cfg.quota, clock), CONDITIONS[name], rng=rng)


def describe(policy: Policy) -> dict[str, object]:
    """The policy's settings as the set-sampling reply shows them."""
    cfg = policy.config
    out: dict[str, object] = {"enabled": cfg.enabled, "rate": cfg.rate, "fired": policy.fired}
    out["quota"] = {k: getattr(cfg.quota, k) for k in ("per_minute", "per_hour", "per_day")}
    if policy.name == "low_confidence":
        out.update(min_score=cfg.min_score, max_score=cfg.max_score, margin=cfg.margin)
    elif policy.name == "near_threshold":
        out.update(threshold=cfg.threshold, delta=cfg.delta, labels=list(cfg.labels))
    elif policy.name == "classes":
        out["labels"] = list(cfg.labels)
    return out
