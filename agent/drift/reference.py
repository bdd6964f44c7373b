"""The manifest's ``reference`` block: what the model's validation data looked like.

Written by the training script, read here into a typed value once per model. See
docs/health.md for the format.

A line's frames are not a balanced validation set: most parts are good, and a good
part looks different to the model (higher confidence) and to the camera (less
texture) than a defective one. The optional ``by_class`` block keeps the top-1
confidences and image statistics per *predicted* class, so each window can be
compared with the reference mixed in the proportions the window itself predicted
(see :mod:`agent.drift.window`). Without it every class uses the pooled figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.imagestats import STAT_NAMES

OTHER = "(other)"  # predicted labels the reference does not know
LOG_STATS = (STAT_NAMES.index("sharpness"),)  # tested on a log scale (see to_test_space)
# A class needs this many reference samples to have its own figures; fewer are too noisy
# to test against, so such a class falls back to the pooled reference.
MIN_CLASS_SAMPLES = 20


def to_test_space(
    mean: np.ndarray, std: np.ndarray, log: Mapping[int, tuple[float, float]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std each image statistic is tested in: log space for the LOG_STATS.

    Sharpness (variance of the Laplacian) is positive and heavy-tailed (its std is
    about its mean), so even a perfectly blurred window is barely one std below the
    mean. In log space a 6x drop in sharpness is a 2-sigma shift. ``log`` holds the
    measured mean/std of the log (``log_mean``/``log_std`` in the block, written by
    newer training scripts); without them a log-normal is fitted to the mean/std
    (sigma^2 = ln(1 + (s/m)^2), mu = ln m - sigma^2 / 2), which is poor for a mix of
    smooth and textured parts (the demo's good parts: fitted sigma 0.98, measured 1.41).
    """
    mu, sd = mean.astype(np.float64), std.astype(np.float64)
    for i in LOG_STATS:
        if log and i in log:
            mu[i], sd[i] = log[i]
            continue
        var = np.log1p((sd[i] / mu[i]) ** 2)
        mu[i], sd[i] = np.log(mu[i]) - var / 2, np.sqrt(var)
    return mu, sd


@dataclass(frozen=True, slots=True)
class ClassFigures:
    """The reference as seen for one predicted class (or pooled): what a window is tested against."""

    confidence: np.ndarray  # sorted float64 top-1 confidences (quantiles)
    test_mean: np.ndarray  # per STAT_NAMES, in the test space
    test_std: np.ndarray


@dataclass(frozen=True, slots=True)
class Reference:
    """Sorted top-1 confidences, the class mix over ``labels`` (+ OTHER), image-stat mean/std."""

    split: str
    samples: int
    confidence: np.ndarray  # sorted float64
    labels: tuple[str, ...]  # the class-mix labels; the last share is OTHER
    mix: np.ndarray  # shares, len(labels) + 1
    image_mean: np.ndarray  # per STAT_NAMES, as written
    image_std: np.ndarray
    # Per class index (len(labels) + 1, the last is OTHER): that class's figures, or the pooled ones.
    figures: tuple[ClassFigures, ...] = ()

    @property
    def test_space(self) -> tuple[np.ndarray, np.ndarray]:
        """The pooled mean and std in the test space (see :func:`to_test_space`)."""
        if self.figures:
            pooled = self.figures[-1]
            return pooled.test_mean, pooled.test_std
        return to_test_space(self.image_mean, self.image_std)

    @property
    def per_class(self) -> tuple[str, ...]:
        """The labels that have figures of their own (the others use the pooled reference)."""
        pooled = self.figures[-1] if self.figures else None
        return tuple(k for k, f in zip(self.labels, self.figures, strict=False) if f is not pooled)


def _stats(block: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[float, float]]]:
    """Mean and std as written, and the measured log-space mean/std where the block has them."""
    mean = np.array([float(block[k]["mean"]) for k in STAT_NAMES])
    std = np.array([float(block[k]["std"]) for k in STAT_NAMES])
    log = {
        i: (float(block[STAT_NAMES[i]]["log_mean"]), float(block[STAT_NAMES[i]]["log_std"]))
        for i in LOG_STATS
        if "log_mean" in block[STAT_NAMES[i]]
    }
    if not np.all(std > 0) or not np.all(np.isfinite(mean)) or np.any(mean[list(LOG_STATS)] <= 0):
        raise ModelError("manifest reference: image_stats need finite means (sharpness > 0) and std > 0")
    if any(not (np.isfinite(m) and s > 0) for m, s in log.values()):
        raise ModelError("manifest reference: image_stats log_mean must be finite and log_std > 0")
    return mean, std, log


def _confidences(values: Any, where: str) -> np.ndarray:
    conf = np.sort(np.asarray(values, dtype=np.float64))
    if conf.ndim != 1 or len(conf) < 2 or not np.all(np.isfinite(conf)):
        raise ModelError(f"manifest reference: {where} needs at least 2 finite numbers")
    return conf


def _class_figures(block: Mapping[str, Any], label: str) -> ClassFigures | None:
    """One ``by_class`` entry, or None when it has too few samples to stand on its own."""
    where = f"by_class.{label}"
    if not isinstance(block, Mapping):
        raise ModelError(f"manifest reference: {where} must be a mapping")
    try:
        samples = int(block["samples"])
        conf = _confidences(block["top1_confidence"], f"{where}.top1_confidence")
        mean, std, log = _stats(block["image_stats"])
    except KeyError as exc:
        raise ModelError(f"manifest reference: {where}: missing key {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"manifest reference: {where}: malformed value ({exc})") from exc
    if samples < MIN_CLASS_SAMPLES:
        return None
    return ClassFigures(conf, *to_test_space(mean, std, log))


def parse_reference(
    block: Mapping[str, Any], model_labels: Sequence[str], class_mix: Mapping[str, float] | None = None
) -> Reference:
    """Validate a ``reference`` block; raise ModelError naming the first bad key.

    ``class_mix`` (from the drift config) replaces the reference's mix when given: a
    validation set is often balanced while a line is mostly good parts.
    """
    try:
        conf = _confidences(block["top1_confidence"], "top1_confidence")
        mix_block = dict(class_mix or block["class_mix"])
        mean, std, log = _stats(block["image_stats"])
        samples = int(block.get("samples", len(conf)))
        split = str(block.get("split", "unknown"))
        by_class = dict(block.get("by_class") or {})
    except KeyError as exc:
        raise ModelError(f"manifest reference: missing key {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"manifest reference: malformed value ({exc})") from exc
    labels = tuple(dict.fromkeys([*model_labels, *mix_block]))
    try:
        shares = np.array([float(mix_block.get(k, 0.0)) for k in labels] + [0.0])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"manifest reference: class_mix shares must be numbers ({exc})") from exc
    if np.any(shares < 0) or shares.sum() <= 0:
        raise ModelError("manifest reference: class_mix shares must be >= 0 and not all 0")
    pooled = ClassFigures(conf, *to_test_space(mean, std, log))
    own = {k: _class_figures(v, str(k)) for k, v in by_class.items()}
    figures = (*(own.get(k) or pooled for k in labels), pooled)
    return Reference(split, samples, conf, labels, shares / shares.sum(), mean, std, figures)
