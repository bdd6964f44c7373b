from __future__ import annotations

import numpy as np
import pytest

from agent.drift.statistics import kolmogorov_sf, ks_2samp, ks_mixture, psi


@pytest.mark.parametrize(("lam", "expected"), [(1.224, 0.10), (1.358, 0.05), (1.628, 0.01), (1.949, 0.001)])
def test_kolmogorov_tail_matches_the_published_critical_values(lam: float, expected: float) -> None:
    assert kolmogorov_sf(lam) == pytest.approx(expected, rel=0.02)


def test_kolmogorov_tail_is_one_near_zero_and_vanishes_far_out() -> None:
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(0.29) == 1.0
    assert kolmogorov_sf(5.0) < 1e-20


def test_ks_distance_of_identical_samples_is_zero() -> None:
    x = np.linspace(0, 1, 50)
    assert ks_2samp(x, x) == (0.0, 1.0)


def test_ks_distance_of_disjoint_samples_is_one_with_a_tiny_p_value() -> None:
    d, p = ks_2samp(np.linspace(0, 1, 100), np.linspace(2, 3, 100))
    assert d == 1.0
    assert p < 1e-20


def test_ks_distance_is_the_largest_gap_between_the_two_cdfs() -> None:
    # By hand: F_a steps at 1, 2, 3 (thirds), F_b at 2.5, 3.5 (halves); the widest gap is just after 2.
    d, _ = ks_2samp(np.array([3.0, 1.0, 2.0]), np.array([2.5, 3.5]))
    assert d == pytest.approx(2 / 3)


def test_ks_same_distribution_rarely_rejects_and_a_shift_always_does() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.beta(8, 2, 256))
    same = [ks_2samp(rng.beta(8, 2, 200), ref)[1] for _ in range(200)]
    assert np.mean(np.array(same) < 0.01) < 0.03
    shifted = [ks_2samp(rng.beta(4, 2, 200), ref)[1] for _ in range(20)]
    assert max(shifted) < 0.01


def test_ks_of_an_empty_sample_says_no_difference() -> None:
    assert ks_2samp(np.array([]), np.array([1.0, 2.0])) == (0.0, 1.0)


def test_psi_is_zero_for_the_same_mix_and_matches_the_formula_otherwise() -> None:
    mix = np.array([0.5, 0.3, 0.2])
    assert psi(mix * 200, mix) == pytest.approx(0.0, abs=1e-12)
    o, e = np.array([0.7, 0.2, 0.1]), mix
    assert psi(o * 100, e) == pytest.approx(float(np.sum((o - e) * np.log(o / e))))


def test_psi_stays_finite_when_a_class_is_missing() -> None:
    value = psi(np.array([100.0, 0.0]), np.array([0.5, 0.5]))
    assert np.isfinite(value) and value > 1.0


def test_ks_mixture_of_one_reference_is_the_two_sample_test() -> None:
    rng = np.random.default_rng(1)
    sample, ref = rng.beta(8, 2, 200), np.sort(rng.beta(8, 2, 256))
    assert ks_mixture(sample, [ref], np.array([3.0])) == pytest.approx(ks_2samp(sample, ref))


def test_ks_mixture_accepts_a_sample_drawn_in_the_mixture_proportions() -> None:
    # Two classes with very different confidences; a window of 80 % of the first is the mixture 0.8/0.2,
    # not the 50/50 pool of both references (which it would fail).
    rng = np.random.default_rng(2)
    high, low = np.sort(rng.beta(20, 1, 200)), np.sort(rng.beta(3, 2, 200))
    p_mix, p_pool = [], []
    for _ in range(100):
        window = np.concatenate([rng.beta(20, 1, 200), rng.beta(3, 2, 50)])
        p_mix.append(ks_mixture(window, [high, low], np.array([200.0, 50.0]))[1])
        p_pool.append(ks_2samp(window, np.sort(np.concatenate([high, low])))[1])
    assert np.mean(np.array(p_mix) < 0.01) < 0.05
    assert np.mean(np.array(p_pool) < 0.01) > 0.95


def test_ks_mixture_effective_size_shrinks_with_uneven_weights() -> None:
    # Same distance, but a reference dominated by a 20-sample class is less certain: a larger p-value.
    a, b = np.linspace(0, 1, 200), np.linspace(0, 1, 20)
    sample = np.linspace(0.1, 1.1, 250)
    _, p_even = ks_mixture(sample, [a, a], np.array([1.0, 1.0]))
    _, p_small = ks_mixture(sample, [a, b], np.array([0.1, 0.9]))
    assert p_small > p_even


def test_ks_mixture_of_nothing_says_no_difference() -> None:
    assert ks_mixture(np.array([]), [np.array([1.0, 2.0])], np.array([1.0])) == (0.0, 1.0)
    assert ks_mixture(np.array([1.0]), [np.array([1.0, 2.0])], np.array([0.0])) == (0.0, 1.0)
