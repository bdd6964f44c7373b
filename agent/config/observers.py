"""Configuration sections of the parts that watch the inspection: sampling, health and drift.

Split out of :mod:`agent.config.schema` (which re-exports them) to keep each module small;
same rules: frozen dataclasses, unknown keys rejected, cross-field rules in ``_check``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Token buckets for one sampling policy (or all of them): None means no limit on that period."""

    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def _check(self) -> Problems:
        return [
            (name, "must be between 0 and 10000000")
            for name in ("per_minute", "per_hour", "per_day")
            if not 0 <= (getattr(self, name) or 0) <= 10_000_000
        ]


@dataclass(frozen=True, slots=True)
class SamplingPolicyConfig:
    """One sampling policy. Only the keys of its own kind matter (see docs/collector.md):
    low_confidence: min_score/max_score band or top-2 margin below ``margin``;
    near_threshold: a defect label within ±``delta`` of ``threshold``; classes: ``labels``;
    random and drift: ``rate`` alone (drift only while a drift alarm is on); disagreement: ``rate``
    alone, on the frames the shadow model offers (where it and the active model differ)."""

    enabled: bool = False
    rate: float = 1.0  # share of the frames that match which are sampled
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    min_score: float = 0.3
    max_score: float = 0.9
    margin: float = 0.0  # low_confidence also fires when the top-2 margin is below it (0: off)
    threshold: float = 0.5
    delta: float = 0.05
    labels: list[str] = field(default_factory=list)  # empty: near_threshold watches every label but the first

    def _check(self) -> Problems:
        problems: Problems = []
        if not 0.0 <= self.rate <= 1.0:
            problems.append(("rate", "must be between 0 and 1"))
        if not 0.0 <= self.min_score <= self.max_score <= 1.0:
            problems.append(("max_score", "needs 0 <= min_score <= max_score <= 1"))
        if not 0.0 <= self.margin <= 1.0 or not 0.0 <= self.delta <= 1.0:
            problems.append(("margin", "margin and delta must be between 0 and 1"))
        if not 0.0 <= self.threshold <= 1.0:  # a score threshold; also refuses inf and NaN
            problems.append(("threshold", "must be between 0 and 1"))
        return problems


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Near-duplicate suppression: a frame whose 64-bit dHash is within ``max_distance`` bits of one
    sampled in the last ``window_s`` seconds is not sent again (a stopped line)."""

    enabled: bool = True
    window_s: float = 60.0
    max_distance: int = 4
    history: int = 256  # hashes remembered at most

    def _check(self) -> Problems:
        problems: Problems = []
        if self.window_s < 0 or self.history < 1:
            problems.append(("window_s", "needs window_s >= 0 and history >= 1"))
        if not 0 <= self.max_distance <= 64:
            problems.append(("max_distance", "must be between 0 and 64 bits"))
        return problems


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """Frames sent on .../sample for retraining (agent/sampling). Off unless enabled."""

    enabled: bool = False
    seed: int | None = None  # fixed seed: deterministic rate draws (tests)
    jpeg_quality: int = 85
    max_side: int = 1024  # longest image side after downscaling
    queue_size: int = 16  # samples waiting for the encoder; a full queue drops and counts
    log_size: int = 1000  # ids of sent samples kept in memory
    log_file: bool = True  # also append them to {state.dir}/samples.jsonl
    # mqtt: the JPEG travels in the message (downscaled to fit max_side and the packet limit);
    # presigned: full resolution straight to the collector's S3 store, metadata over MQTT 5
    # (docs/collector.md#presigned-uploads); any failure falls back to mqtt for that sample.
    upload: Literal["mqtt", "presigned"] = "mqtt"
    upload_timeout_s: float = 10.0
    quota: QuotaConfig = field(default_factory=lambda: QuotaConfig(per_minute=60, per_hour=1000))
    dedup: DedupConfig = field(default_factory=DedupConfig)
    low_confidence: SamplingPolicyConfig = field(default_factory=lambda: SamplingPolicyConfig(enabled=True))
    near_threshold: SamplingPolicyConfig = field(default_factory=SamplingPolicyConfig)
    classes: SamplingPolicyConfig = field(default_factory=SamplingPolicyConfig)
    random: SamplingPolicyConfig = field(default_factory=lambda: SamplingPolicyConfig(rate=0.01))
    drift: SamplingPolicyConfig = field(default_factory=lambda: SamplingPolicyConfig(rate=0.1))
    # Frames where the shadow model and the active one disagree (only with model.shadow set).
    disagreement: SamplingPolicyConfig = field(
        default_factory=lambda: SamplingPolicyConfig(enabled=True, quota=QuotaConfig(per_minute=20))
    )

    def _check(self) -> Problems:
        problems: Problems = []
        if not 10 <= self.jpeg_quality <= 100:
            problems.append(("jpeg_quality", "must be between 10 and 100"))
        if self.max_side < 32:
            problems.append(("max_side", "must be at least 32"))
        if not 0.5 <= self.upload_timeout_s <= 300:
            problems.append(("upload_timeout_s", "must be between 0.5 and 300"))
        if self.queue_size < 1 or self.log_size < 1:
            problems.append(("queue_size", "queue_size and log_size must be at least 1"))
        return problems


@dataclass(frozen=True, slots=True)
class HealthConfig:
    interval_s: float = 10.0  # retained .../health and {state.dir}/health.json this often
    # 0: a health report is superseded by the next one, so it is not kept in the durable outbox
    # (no fsync, no replay of stale reports after an outage); 1: through the outbox at low priority.
    qos: Literal[0, 1] = 0
    prometheus: str | None = None  # "HOST:PORT" serves /metrics (needs the `metrics` extra); None: off

    def _check(self) -> Problems:
        problems: Problems = []
        if self.interval_s < 0.1:
            problems.append(("interval_s", "must be at least 0.1"))
        if self.prometheus is not None:
            host, sep, port = self.prometheus.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                problems.append(("prometheus", f"{self.prometheus!r} is not HOST:PORT (e.g. 127.0.0.1:9108)"))
        return problems


@dataclass(frozen=True, slots=True)
class DriftConfig:
    # Needs the model manifest's `reference` block; without one drift is off (logged once).
    enabled: bool = True
    window: int = 250  # frames per test window (~8 s at 30 fps)
    # Image statistics on every Nth frame, from the model's own view of it (gray at its input size,
    # ~20 us): every 10th gives 25 samples per window.
    image_every: int = 10
    ks_p_value: float = 0.01  # top-1 confidence drifts when the KS p-value is below this...
    ks_min_statistic: float = 0.2  # ...and the KS distance is above this (effect size, not just n)
    psi_threshold: float = 0.25  # predicted class mix drifts above this PSI (0.25: a major shift)
    # An image statistic drifts when its window mean is > z_threshold standard errors from the reference
    # mean and the shift is > effect_min reference standard deviations (significant and large).
    z_threshold: float = 4.0
    effect_min: float = 0.5
    raise_after: int = 2  # consecutive drifting windows to raise the alarm
    clear_after: int = 3  # consecutive clean windows to clear it
    # The class mix expected on this line (labels -> shares); empty: the reference's (validation) mix.
    class_mix: dict[str, float] = field(default_factory=dict)
    # manifest: test against the model's reference block. learn: the first ``learn_windows`` windows
    # after a model is activated become the reference (stored in state.dir, cleared on a model swap).
    baseline: Literal["manifest", "learn"] = "manifest"
    learn_windows: int = 20

    def _check(self) -> Problems:
        problems: Problems = []
        if self.window < 20:
            problems.append(("window", "must be at least 20 frames"))
        if not 1 <= self.image_every <= self.window:
            problems.append(("image_every", "must be between 1 and window"))
        if not 0.0 < self.ks_p_value < 1.0 or not 0.0 <= self.ks_min_statistic < 1.0:
            problems.append(("ks_p_value", "needs 0 < ks_p_value < 1 and 0 <= ks_min_statistic < 1"))
        if self.psi_threshold <= 0 or self.z_threshold <= 0:
            problems.append(("psi_threshold", "psi_threshold and z_threshold must be greater than 0"))
        if self.raise_after < 1 or self.clear_after < 1:
            problems.append(("raise_after", "raise_after and clear_after must be at least 1"))
        shares = self.class_mix.values()
        if self.class_mix and (any(v < 0 for v in shares) or sum(shares) <= 0):
            problems.append(("class_mix", "shares must be >= 0 and not all 0"))
        if self.learn_windows < 2:
            problems.append(("learn_windows", "must be at least 2"))
        return problems


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """How the shadow model (``model.shadow``) runs beside the active one; see docs/models.md."""

    window_s: float = 60.0  # a {root}/shadow summary this often
    # The shadow stops (and says why) when the median of its last runs is slower than this;
    # None: the active model's latency budget. A shadow that never fits is no candidate.
    max_latency_ms: float | None = None
    max_errors: int = 10  # shadow failures in a row before it stops
    # Linux nice increment of the shadow thread: the line's own threads win the CPU.
    nice: int = 10
    # Free time needed before a frame is handed over: the shadow's expected run must fit in the
    # frame interval minus the active model's time, times this margin.
    headroom: float = 1.0

    def _check(self) -> Problems:
        problems: Problems = []
        if self.window_s < 1.0:
            problems.append(("window_s", "must be at least 1"))
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            problems.append(("max_latency_ms", "must be greater than 0"))
        if self.max_errors < 1:
            problems.append(("max_errors", "must be at least 1"))
        if not 0 <= self.nice <= 19:
            problems.append(("nice", "must be between 0 and 19"))
        if self.headroom <= 0:
            problems.append(("headroom", "must be greater than 0"))
        return problems


@dataclass(frozen=True, slots=True)
class AccuracyConfig:
    """Measured line accuracy on the collector, from reviewed samples of one unbiased policy.

    Only ``policy`` samples (``random`` by default) are an unbiased sample of a line: the other
    policies pick hard or odd frames on purpose. The sample's final ``label`` (what reviewers
    decided) is the truth; its ``predicted`` label is what the model said.
    """

    enabled: bool = True
    target: float | None = None  # alarm when the 95 % interval's upper bound falls below it
    policy: str = "random"
    ok_labels: list[str] = field(default_factory=lambda: ["ok"])  # every other label is a defect
    interval_s: float = 300.0  # how often the running collector recomputes and publishes
    since_days: float | None = None  # only samples of the last N days (None: all of them)

    def _check(self) -> Problems:
        problems: Problems = []
        if self.target is not None and not 0.0 < self.target <= 1.0:
            problems.append(("target", "must be between 0 and 1"))
        if self.interval_s < 1.0:
            problems.append(("interval_s", "must be at least 1"))
        if self.since_days is not None and self.since_days <= 0:
            problems.append(("since_days", "must be greater than 0"))
        return problems
