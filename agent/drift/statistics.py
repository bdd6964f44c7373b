"""The window tests, in numpy only (no scipy on the device): two-sample KS and PSI.

Both run once per window, off the inspection thread, on a few hundred numbers.
"""

from __future__ import annotations

import math

import numpy as np

_PSI_FLOOR = 1e-4  # a share of 0 would make PSI infinite; this is the usual floor


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 * sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lam^2).

    The series converges fast for lam > 0.3; below that the tail probability is 1 to
    double precision (the alternating sum would need thousands of terms to say so).
    """
    if lam < 0.3:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = math.exp(-2.0 * j * j * lam * lam)
        total += term if j % 2 else -term
        if term < 1e-12:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_2samp(sample: np.ndarray, reference_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov distance and its asymptotic p-value.

    ``reference_sorted`` must be sorted (the manifest stores it so). The p-value uses
    the effective size ``n*m/(n+m)`` with Stephens' small-sample correction
    (``lam = (sqrt(ne) + 0.12 + 0.11/sqrt(ne)) * D``), as in Numerical Recipes.
    """
    n, m = len(sample), len(reference_sorted)
    if n == 0 or m == 0:
        return 0.0, 1.0
    xs = np.sort(sample)
    points = np.concatenate([xs, reference_sorted])
    cdf_x = np.searchsorted(xs, points, side="right") / n
    cdf_r = np.searchsorted(reference_sorted, points, side="right") / m
    d = float(np.max(np.abs(cdf_x - cdf_r)))
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def psi(observed: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors over the same classes.

    ``sum((o - e) * ln(o / e))``; shares are floored so an empty class counts, finitely.
    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a major shift.
    """
    o = np.maximum(observed / max(float(observed.sum()), 1e-12), _PSI_FLOOR)
    e = np.maximum(expected / max(float(expected.sum()), 1e-12), _PSI_FLOOR)
    return float(np.sum((o - e) * np.log(o / e)))


def ks_mixture(sample: np.ndarray, references: list[np.ndarray], weights: np.ndarray) -> tuple[float, float]:
    """KS distance and p-value of ``sample`` against a mixture of sorted reference samples.

    The reference CDF is ``sum_c w_c * F_c`` (each ``F_c`` an empirical CDF of ``references[c]``).
    Its variance is ``sum_c w_c^2 F_c (1 - F_c) / m_c``, the variance of a single empirical CDF
    of ``m_eff = 1 / sum_c (w_c^2 / m_c)`` samples, so the p-value is the two-sample one with
    ``m_eff`` in place of ``m``. With one reference of weight 1 this is :func:`ks_2samp`.
    """
    n = len(sample)
    keep = [(r, float(w)) for r, w in zip(references, weights, strict=True) if w > 0 and len(r)]
    if n == 0 or not keep:
        return 0.0, 1.0
    total = sum(w for _, w in keep)
    xs = np.sort(sample)
    points = np.concatenate([xs, *(r for r, _ in keep)])
    cdf_x = np.searchsorted(xs, points, side="right") / n
    cdf_r = sum((w / total) * (np.searchsorted(r, points, side="right") / len(r)) for r, w in keep)
    d = float(np.max(np.abs(cdf_x - cdf_r)))
    m = 1.0 / sum((w / total) ** 2 / len(r) for r, w in keep)
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
