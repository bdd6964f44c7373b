"""``inspection-agent drift calibrate``: the baseline the agent would learn, from N windows, offline.

The configured camera is the ``synthetic:`` line (80 % good parts) and the model the demo package;
the calibrated file is compared with what the real DriftMonitor learns from the same frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.capture import open_source
from agent.cli import main
from agent.config import AgentConfig, load_config
from agent.drift import baseline
from agent.drift.monitor import DriftMonitor
from agent.model.loaded import load_model
from agent.protocol.topics import Topics
from agent.testing import RecordingSink
from tests.support.agentproc import write_config
from tests.support.paths import DEMO_MODEL

pytestmark = pytest.mark.slow
WINDOW, WINDOWS = 40, 3
DRIFT = {"baseline": "learn", "learn_windows": WINDOWS, "window": WINDOW, "image_every": 4}


def config(work: Path, source: str = "synthetic:7", **drift: Any) -> Path:
    return write_config(
        work, port=1883, prefix="t", source=source,
        camera={"synthetic_defect_rate": 0.2, "realtime": False}, drift={**DRIFT, **drift},
    )  # fmt: skip


def learned_by_the_monitor(cfg: AgentConfig) -> dict[str, Any]:
    """The same camera through the agent's own path: infer, the model's view, DriftMonitor learning."""
    model = load_model(str(cfg.resolve(cfg.model.path)), cfg.model_settings())
    monitor = DriftMonitor(cfg, model=lambda: model, sink=RecordingSink(), topics=Topics.from_config(cfg))
    source = open_source(cfg.camera, cfg.base_dir)
    source.open()
    try:
        for _ in range(WINDOW * WINDOWS):
            frame = source.read()
            assert frame is not None
            result = model.infer(frame.image)
            frame.view = model.preprocess.view  # as the pipeline hands it over
            monitor.observe(frame, result, {"model": model.summary})  # type: ignore[typeddict-item]
            monitor.poll()
    finally:
        source.close()
        model.close()
    assert monitor.state()["baseline"]["state"] == "learned"
    return dict(json.loads((cfg.state_dir / baseline.FILE).read_text()))


def test_calibrate_writes_the_baseline_the_agent_would_learn_and_the_agent_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path / "cal")
    assert main(["drift", "calibrate", "--config", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "demo-defects 1.0.0" in out and f"{WINDOWS} windows, {WINDOW * WINDOWS} frames" in out
    cfg = load_config(path)
    written = json.loads((cfg.state_dir / baseline.FILE).read_text())
    assert written["windows"] == WINDOWS and written["reference"]["samples"] == WINDOW * WINDOWS
    assert 0.6 < written["reference"]["class_mix"]["ok"] < 0.95  # the line's mix, not a balanced set

    learned = learned_by_the_monitor(load_config(config(tmp_path / "agent")))
    assert written["reference"] == learned["reference"] and written["model"] == learned["model"]

    monitor = DriftMonitor(
        cfg, model=lambda: load_model(str(DEMO_MODEL), cfg.model_settings()), sink=RecordingSink(),
        topics=Topics.from_config(cfg),
    )  # fmt: skip
    assert monitor.state()["baseline"]["state"] == "learned" and monitor.enabled  # no learning on start


def test_more_windows_re_baseline_over_an_earlier_file(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert main(["drift", "calibrate", "--config", str(path), "--quiet"]) == 0
    assert main(["drift", "calibrate", "--config", str(path), "--windows", "4", "--quiet"]) == 0
    written = json.loads((load_config(path).state_dir / baseline.FILE).read_text())
    assert written["windows"] == 4 and written["reference"]["samples"] == 4 * WINDOW


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_mode = config(tmp_path / "m", baseline="manifest")
    assert main(["drift", "calibrate", "--config", str(manifest_mode)]) == 2
    assert "set drift.baseline: learn" in capsys.readouterr().err
    assert main(["drift", "calibrate", "--config", str(config(tmp_path / "w")), "--windows", "1"]) == 2
    assert "at least 2 windows" in capsys.readouterr().err
    short = config(tmp_path / "s", source=f"dir:{DEMO_MODEL / 'golden'}")
    cam = yaml.safe_load(short.read_text())
    cam["camera"]["loop"] = False
    short.write_text(yaml.safe_dump(cam))
    assert main(["drift", "calibrate", "--config", str(short), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "ended after" in err and f"need {WINDOWS * WINDOW}" in err and err.count("\n") == 1
    for work in ("m", "w", "s"):
        assert not (tmp_path / work / "state" / baseline.FILE).exists()
