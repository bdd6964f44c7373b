"""The sampler's JPEG encoder: it respects the size limit and the byte budget, or gives up."""

from __future__ import annotations

import cv2
import numpy as np

from agent.sampling.jpeg import fit_jpeg
from tests.unit.sampling.helpers import image


def test_fit_jpeg_respects_max_side_and_budget() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)
    big = fit_jpeg(noise, 90, 400, 10**9)
    assert big is not None and (big.width, big.height) == (400, 300)
    small = fit_jpeg(noise, 90, 400, 20000)
    assert small is not None and len(small.data) <= 20000
    decoded = cv2.imdecode(np.frombuffer(small.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (small.height, small.width)


def test_fit_jpeg_gives_up_when_nothing_fits() -> None:
    assert fit_jpeg(image(1), 90, 400, 100) is None
