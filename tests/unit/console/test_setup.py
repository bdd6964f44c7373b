"""Setup aids: the focus meter keeps its peak, exposure is judged against the model's reference."""

from __future__ import annotations

import cv2
import numpy as np

from agent.capture.base import Frame
from agent.console.setup import SetupMeter

REFERENCE = {
    "image_stats": {
        "brightness": {"mean": 115.0, "std": 29.0},
        "contrast": {"mean": 19.7, "std": 5.9},
        "sharpness": {"mean": 605.0, "std": 717.0, "log_mean": 5.8, "log_std": 1.2},
    }
}


def frame(image: np.ndarray) -> Frame:
    view = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (96, 96), interpolation=cv2.INTER_AREA)
    return Frame(image, seq=0, ts_ms=0, mono=0.0, view=view)


def textured(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = rng.normal(115, 20, (240, 320)).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def test_focus_drops_when_the_lens_blurs_and_the_peak_stays() -> None:
    meter = SetupMeter(REFERENCE)
    sharp = textured()
    meter.measure(frame(sharp), sharp)
    peak = meter.figures["focus"]["value"]
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    meter.measure(frame(blurred), blurred)
    focus = meter.figures["focus"]
    assert focus["value"] < peak / 4
    assert focus["best"] == peak and focus["of_best"] < 0.25
    meter.reset_focus()
    meter.measure(frame(blurred), blurred)
    assert meter.figures["focus"]["of_best"] == 1.0


def test_a_dark_frame_is_too_low_against_the_reference_and_clipped() -> None:
    meter = SetupMeter(REFERENCE)
    dark = (textured() // 40).astype(np.uint8)
    meter.measure(frame(dark), dark)
    assert meter.figures["brightness"]["verdict"] == "too low"
    assert meter.figures["clipping"]["warning"] is True
    normal = textured()
    meter.measure(frame(normal), normal)
    assert meter.figures["brightness"]["verdict"] == "in range"
    assert meter.figures["clipping"]["warning"] is False


def test_without_a_reference_the_values_are_shown_without_a_verdict() -> None:
    meter = SetupMeter(None)
    image = textured()
    meter.measure(frame(image), image)
    assert meter.figures["brightness"]["verdict"] == "no reference"
    assert meter.figures["brightness"]["value"] > 0
