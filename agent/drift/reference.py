"""The manifest's ``reference`` block: what the model's validation data looked like.

Written by the training script, read here into a typed value once per model. See
docs/health.md for the format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.drift.stats import STAT_NAMES
from agent.errors import ModelError

OTHER = "(other)"  # predicted labels the reference does not know
LOG_STATS = (STAT_NAMES.index("sharpness"),)  # tested on a log scale (see Reference.test_space)


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

    @property
    def test_space(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std each image statistic is tested in: log space for the LOG_STATS.

        Sharpness (variance of the Laplacian) is positive and heavy-tailed (its std is
        about its mean), so even a perfectly blurred window is barely one std below the
        mean. A log-normal fitted to the reference mean/std (sigma^2 = ln(1 + (s/m)^2),
        mu = ln m - sigma^2 / 2) makes a 6x drop in sharpness a 2-sigma shift.
        """
        mu, sd = self.image_mean.copy(), self.image_std.copy()
        for i in LOG_STATS:
            var = np.log1p((sd[i] / mu[i]) ** 2)
            mu[i], sd[i] = np.log(mu[i]) - var / 2, np.sqrt(var)
        return mu, sd


def parse_reference(
    block: Mapping[str, Any], model_labels: Sequence[str], class_mix: Mapping[str, float] | None = None
) -> Reference:
    """Validate a ``reference`` block; raise ModelError naming the first bad key.

    ``class_mix`` (from the drift config) replaces the reference's mix when given: a
    validation set is often balanced while a line is mostly good parts.
    """
    try:
        conf = np.sort(np.asarray(block["top1_confidence"], dtype=np.float64))
        mix_block = dict(class_mix or block["class_mix"])
        stats = block["image_stats"]
        mean = np.array([float(stats[k]["mean"]) for k in STAT_NAMES])
        std = np.array([float(stats[k]["std"]) for k in STAT_NAMES])
        samples = int(block.get("samples", len(conf)))
        split = str(block.get("split", "unknown"))
    except KeyError as exc:
        raise ModelError(f"manifest reference: missing key {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"manifest reference: malformed value ({exc})") from exc
    if conf.ndim != 1 or len(conf) < 2 or not np.all(np.isfinite(conf)):
        raise ModelError("manifest reference: top1_confidence needs at least 2 finite numbers")
    if not np.all(std > 0) or not np.all(np.isfinite(mean)) or np.any(mean[list(LOG_STATS)] <= 0):
        raise ModelError("manifest reference: image_stats need finite means (sharpness > 0) and std > 0")
    labels = tuple(dict.fromkeys([*model_labels, *mix_block]))
    try:
        shares = np.array([float(mix_block.get(k, 0.0)) for k in labels] + [0.0])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"manifest reference: class_mix shares must be numbers ({exc})") from exc
    if np.any(shares < 0) or shares.sum() <= 0:
        raise ModelError("manifest reference: class_mix shares must be >= 0 and not all 0")
    return Reference(split, samples, conf, labels, shares / shares.sum(), mean, std)
