"""Issue 21's proof for models: each tool's export goes `model import` -> `model validate` -> the agent ->
MQTT, and the boxes (or labels) that arrive are the ones the fixture put in, in frame coordinates.

The exports are built by scripts/make_interop_models.py with each tool's exact tensor
signature and embedded metadata; expected.json holds the boxes they carry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.agentproc import AgentProcess, run_agent, write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

INTEROP = REPO / "tests" / "fixtures" / "interop"
EXPECTED = json.loads((INTEROP / "expected.json").read_text())


def imported(tmp_path: Path, export: str, *extra: str) -> Path:
    """`inspection-agent model import` as a user runs it; the package it built (validated)."""
    out = tmp_path / "package"
    done = run_agent(["model", "import", str(INTEROP / export), "--out", str(out), "--runs", "5", *extra])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inferred:" in done.stdout and f"PASS: {out}" in done.stdout, done.stdout
    return out


def run_on(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str, package: Path, frames: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Run the agent over ``frames`` (file name -> BGR image); the result payloads by file name."""
    images = tmp_path / "frames"
    images.mkdir()
    for name, image in frames.items():
        cv2.imwrite(str(images / name), image)
    topic = f"{prefix}/plant-a/line-3/cam-01/result"
    with Subscriber(mosquitto.port, topic) as sub:
        cfg = write_config(
            tmp_path / "agent", port=mosquitto.port, prefix=prefix, source=f"dir:{images}", package=package
        )
        with AgentProcess(cfg) as agent:
            assert agent.wait(90) == 0, agent.output
        got = sub.wait_for(len(frames), timeout=5)
    results = {(r := json.loads(payload))["ref"]: r for _, payload, _ in got}
    assert set(results) == set(frames), agent.output
    return results


def scene() -> np.ndarray:
    w, h = EXPECTED["frame"]["width"], EXPECTED["frame"]["height"]
    return np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("export", "kind"),
    [
        ("ultralytics_det.onnx", "raw"),
        ("ultralytics_det_float32.tflite", "raw"),
        ("ultralytics_e2e.onnx", "end2end"),
        ("ultralytics_e2e_float32.tflite", "end2end"),
    ],
)
def test_ultralytics_boxes_arrive_where_the_export_put_them(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, export: str, kind: str
) -> None:
    package = imported(tmp_path, export)
    result = run_on(tmp_path, mosquitto, unique_prefix, package, {"scene.png": scene()})["scene.png"]
    want = EXPECTED[kind]  # raw: the overlapping twin is suppressed; end2end: the head's rows as they are
    got = sorted(result["detections"], key=lambda d: -d["score"])
    assert [(d["label"], round(d["score"], 3)) for d in got] == [
        (d["label"], d["score"]) for d in sorted(want, key=lambda d: -d["score"])
    ]
    for d, w in zip(got, sorted(want, key=lambda d: -d["score"]), strict=True):
        assert d["box"] == pytest.approx(w["box"], abs=0.01), (export, d, w)
    assert result["label"] == "scratch" and result["defect"] is True


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(("teachable", "teachable"), id="teachable"),
        pytest.param(("edge_impulse", "edge_impulse"), id="edge_impulse"),
        pytest.param(  # a Keras model is converted by TensorFlow: the train extra
            ("keras/classifier.keras", "keras", "--labels", "good,scratch"),
            marks=[pytest.mark.train, pytest.mark.slow],
            id="keras",
        ),
        pytest.param(("torch/classifier.onnx", "torch", "--labels", "good,scratch"), id="torch"),
    ],
)
def test_classifier_exports_label_black_and_white_frames_as_trained(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, case: tuple[str, ...]
) -> None:
    export, tool, *extra = case
    package = imported(tmp_path, export, *extra)
    frames = {
        "black.png": np.zeros((240, 320, 3), np.uint8),
        "white.png": np.full((240, 320, 3), 255, np.uint8),
    }
    results = run_on(tmp_path, mosquitto, unique_prefix, package, frames)
    want = EXPECTED["classifiers"][tool]
    assert {k[:-4]: r["label"] for k, r in results.items()} == want
    assert all(r["score"] > 0.9 for r in results.values()), results  # the input scaling is right
