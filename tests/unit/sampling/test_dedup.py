"""dHash near-duplicate suppression: the same scene within the window is suppressed, others pass."""

from __future__ import annotations

import cv2
import numpy as np

from agent.config.observers import DedupConfig
from agent.sampling.dedup import DuplicateFilter, dhash, hamming
from tests.unit.sampling.helpers import image


def test_jpeg_noise_and_brightness_keep_the_hash_close() -> None:
    img = image(1, (480, 640))
    ok, buf = cv2.imencode(
        ".jpg", cv2.convertScaleAbs(img, alpha=1.0, beta=6), [cv2.IMWRITE_JPEG_QUALITY, 60]
    )
    assert ok
    noisy = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert hamming(dhash(img), dhash(noisy)) <= 4
    assert hamming(dhash(img), dhash(image(2, (480, 640)))) > 10


def test_hash_is_64_bits_and_accepts_grayscale() -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    value = dhash(gray)
    assert 0 <= value < 2**64
    assert value == dhash(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def test_duplicate_within_window_then_accepted_after_it() -> None:
    f = DuplicateFilter(DedupConfig(window_s=10.0, max_distance=4))
    h = dhash(image(3))
    assert not f.is_duplicate(h, 0.0)
    assert f.is_duplicate(h ^ 0b111, 5.0)  # 3 bits away
    assert not f.is_duplicate(h ^ 0b11111, 6.0)  # 5 bits away: a different frame
    assert not f.is_duplicate(h, 10.5)  # the first one left the window


def test_disabled_filter_never_suppresses() -> None:
    f = DuplicateFilter(DedupConfig(enabled=False))
    assert not f.is_duplicate(1, 0.0)
    assert not f.is_duplicate(1, 0.0)
