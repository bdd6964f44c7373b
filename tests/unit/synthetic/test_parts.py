"""The synthetic part renderer: deterministic, well-formed, and its defects survive the trip to 96x96."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from agent.synthetic import DEFECT_LABELS, LABELS, render_part


def gray96(image: np.ndarray) -> np.ndarray:
    """What the demo model sees: the agent's gray, stretched INTER_AREA resize."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA), dtype=np.int16)


def test_labels_are_ok_then_the_defects() -> None:
    assert LABELS == ("ok", "scratch", "spot", "crack", "hole")
    assert tuple(DEFECT_LABELS) == ("scratch", "spot", "crack", "hole")


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("size", [(640, 480), (320, 240), (480, 640), (97, 33), (16, 16)])
def test_every_label_renders_bgr_uint8_of_the_requested_size(label: str, size: tuple[int, int]) -> None:
    width, height = size
    image = render_part(np.random.default_rng(0), label, width, height)
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


@pytest.mark.parametrize("label", LABELS)
def test_same_generator_state_gives_the_same_frame(label: str) -> None:
    a = render_part(np.random.default_rng(42), label, 320, 240)
    b = render_part(np.random.default_rng(42), label, 320, 240)
    assert np.array_equal(a, b)


def test_different_seeds_give_different_frames() -> None:
    a = render_part(np.random.default_rng(1), "ok", 160, 120)
    b = render_part(np.random.default_rng(2), "ok", 160, 120)
    assert not np.array_equal(a, b)


def test_frames_are_textured_and_neither_black_nor_saturated() -> None:
    for seed in range(40):
        gray = gray96(render_part(np.random.default_rng(seed), "ok", 320, 240))
        assert 20 < gray.mean() < 235, seed
        assert gray.std() > 2, seed  # a surface, not a flat fill


@pytest.mark.parametrize("label", DEFECT_LABELS)
def test_a_defect_is_drawn_locally_and_stays_visible_at_96px(label: str) -> None:
    # severity only scales the defect's contrast, so severity 0 is the same part without it
    for seed in range(20):
        clean = render_part(np.random.default_rng(seed), label, 640, 480, severity=0.0)
        defect = render_part(np.random.default_rng(seed), label, 640, 480)
        changed = np.abs(clean.astype(np.int16) - defect.astype(np.int16)).max(axis=2) > 8
        assert 0.0002 < changed.mean() < 0.08, (seed, changed.mean())  # a mark, not a new surface
        assert np.abs(gray96(defect) - gray96(clean)).max() >= 20, seed


def test_defect_frames_differ_from_ok_frames() -> None:
    ok = [gray96(render_part(np.random.default_rng(s), "ok", 320, 240)) for s in range(5)]
    for label in DEFECT_LABELS:
        bad = [gray96(render_part(np.random.default_rng(s), label, 320, 240)) for s in range(5)]
        assert all(not np.array_equal(a, b) for a, b in zip(ok, bad, strict=True)), label


def test_defect_size_follows_the_frame_not_the_pixels() -> None:
    def changed_share(width: int, height: int) -> float:
        shares = []
        for seed in range(10):
            clean = render_part(np.random.default_rng(seed), "hole", width, height, severity=0.0)
            defect = render_part(np.random.default_rng(seed), "hole", width, height)
            shares.append((np.abs(clean.astype(np.int16) - defect.astype(np.int16)).max(axis=2) > 8).mean())
        return float(np.mean(shares))

    small, large = changed_share(160, 120), changed_share(640, 480)
    assert 0.5 < small / large < 2.0


@pytest.mark.parametrize("bad", ["dent", "OK", ""])
def test_unknown_label_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown label"):
        render_part(np.random.default_rng(0), bad, 64, 48)


def test_frames_too_small_for_a_defect_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        render_part(np.random.default_rng(0), "ok", 15, 100)


def test_a_640x480_frame_renders_in_a_few_milliseconds() -> None:
    # CPU time, not wall time: a busy CI machine must not fail this. ~5 ms on one core.
    rng = np.random.default_rng(0)
    render_part(rng, "ok", 640, 480)  # warm-up: first-call allocations
    times = []
    for i in range(25):
        start = time.process_time()
        render_part(rng, LABELS[i % len(LABELS)], 640, 480)
        times.append(time.process_time() - start)
    assert float(np.median(times)) < 0.025
