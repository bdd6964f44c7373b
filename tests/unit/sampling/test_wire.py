"""The sample wire format: 3.1.1 framing round-trips, broken framing is refused, JPEGs fit the budget."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.sampling.wire import CONTENT_TYPE, fit_jpeg, frame, split_payload, unframe
from tests.unit.sampling.helpers import image


def test_framing_round_trips() -> None:
    meta, jpeg = b'{"id":"x"}', b"\xff\xd8\xff...\xff\xd9"
    assert unframe(frame(meta, jpeg)) == (meta, jpeg)
    assert split_payload(frame(meta, jpeg), None, None) == (meta, jpeg)
    assert split_payload(jpeg, CONTENT_TYPE, '{"id":"x"}') == (meta, jpeg)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\x00", b"\x00\x00\x00\x00rest", b"\x00\x00\x10\x00short", b"\xff\xff\xff\xff{}"],
)
def test_inconsistent_framing_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        unframe(payload)


def test_wrong_content_type_with_meta_is_refused() -> None:
    with pytest.raises(ValueError, match="content type"):
        split_payload(b"x", "image/png", "{}")


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
