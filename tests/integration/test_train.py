"""``inspection-agent train`` end to end: pre-train a base, package it, retrain on a changed task, flash it.

Nothing is downloaded: the base is a small MobileNet v1 (agent.train.zoo) pre-trained here
on one synthetic task (ok / spot / hole). The line then starts showing a new defect
(scratch); the labeled samples of it are retrained into version 2, which must validate,
beat version 1 on the new test split, keep the int8 gap within the limit, and hot-swap on
a running agent without a dropped frame. Images are tiny and epochs few, to keep CI short.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.agentproc import agent_command

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.train]  # TensorFlow trains here

OLD_LABELS = ("ok", "spot", "hole")
NEW_LABELS = (*OLD_LABELS, "scratch")
FRAME = (96, 72)  # rendered frame size; the model input is 64x64 grey
TRAIN_YAML = """\
name: demo
seed: 3
epochs: {epochs}
freeze_epochs: {freeze}
batch_size: 32
learning_rate: 0.003
fine_tune_rate: 0.001
min_per_class: 20
calibration_images: 100
budget_ms: 200
max_int8_drop: {max_drop}
augment: {{rotate_deg: 5, crop: 0.05, brightness: 0.05, contrast: 0.05}}
"""


@dataclass(frozen=True)
class Trained:
    v1: Path
    v2: Path
    new_data: Path
    output: str


def train(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [*agent_command(), "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


def pretrain_base(data: Path, target: Path) -> Path:
    """A MobileNet v1 (width 0.5, first 5 blocks) trained from scratch on the old task, in its own process."""
    code = f"from agent.train.zoo import pretrain; pretrain({str(data)!r}, {OLD_LABELS!r}, {str(target)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """v1: the base packaged on the old task; v2: v1 retrained on the old data plus the new samples."""
    from agent.train.zoo import synthetic_folder

    root = tmp_path_factory.mktemp("train")
    old = synthetic_folder(root / "old", OLD_LABELS, 200, FRAME, seed=1)
    new = synthetic_folder(root / "export", NEW_LABELS, 80, FRAME, seed=2, suffix=".jpg", split=True)
    (new / "export.json").write_text('{"format": "imagefolder"}\n')  # as `dataset export` leaves it
    base = pretrain_base(old, root / "base.keras")
    (root / "v1.yaml").write_text(TRAIN_YAML.format(epochs=3, freeze=3, max_drop=0.05))  # v1: setup only
    (root / "v2.yaml").write_text(TRAIN_YAML.format(epochs=8, freeze=2, max_drop=0.02))
    first = train("--data", old, "--base", base, "--out", root / "v1", "--version", "1.0.0",
                  "--config", root / "v1.yaml")  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = train("--data", new, "--base", root / "v1", "--out", root / "v2", "--version", "2.0.0",
                   "--config", root / "v2.yaml")  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return Trained(root / "v1", root / "v2", new, second.stdout)


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_retrained_package_validates_and_beats_the_running_model(trained: Trained) -> None:
    done = subprocess.run([*agent_command(), "model", "validate", str(trained.v2), "--json", "--runs", "10"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"]
    evaluation = _json(trained.v2 / "evaluation.json")
    old = _json(trained.v1 / "evaluation.json")["labels"]
    assert sorted(old) == sorted(OLD_LABELS)
    assert evaluation["labels"] == [*old, "scratch"]  # the running model's order kept, the new label added
    assert evaluation["label_change"]["added"] == ["scratch"]
    assert "label change" in trained.output
    running = evaluation["running_model"]
    assert running["version"] == "1.0.0"
    assert evaluation["tflite_int8"]["accuracy"] > running["accuracy"], (evaluation, running)
    assert evaluation["int8_accuracy_drop"] <= evaluation["max_int8_drop"] == 0.02
    for variant in ("float", "tflite_int8", "onnx_int8"):
        assert set(evaluation[variant]["per_class"]) == set(NEW_LABELS)


def test_retraining_merges_the_old_data_and_keeps_its_split(trained: Trained) -> None:
    report = _json(trained.v2 / "training" / "report.json")
    data = report["data"]
    assert len(data["sources"]) == 2  # v1's own data came along with the new export
    assert data["previously_split"] == 600  # every old id kept the split v1 gave it
    per_source = data["per_source"]
    assert set(per_source[str(trained.new_data)]) == set(NEW_LABELS)
    assert report["imbalance"]["class_weights"]["scratch"] > report["imbalance"]["class_weights"]["ok"]
    old_ledger = (trained.v1 / "training" / "dataset.csv").read_text().splitlines()[1:]
    new_ledger = set((trained.v2 / "training" / "dataset.csv").read_text().splitlines()[1:])
    assert old_ledger and all(row in new_ledger for row in old_ledger)
    for name in ("curves.png", "confusion_tflite_int8.png", "float.keras"):
        assert (trained.v2 / "training" / name).stat().st_size > 1000


def test_retrained_package_hot_swaps_on_a_real_agent(
    trained: Trained, sshd: Any, tmp_path: Path, mosquitto: Any, unique_prefix: str
) -> None:
    """Flashed over SSH to a store a running agent follows: the swap loses no frame."""
    from tests.support.flash import REAL_VALIDATE, agent_on_store, assert_one_clean_switch

    with agent_on_store(tmp_path, mosquitto.port, unique_prefix, trained.v1) as device:
        result = device.flash(sshd, trained.v2, "--validate-cmd", REAL_VALIDATE)
        assert result.returncode == 0, result.stdout + result.stderr + device.agent.output[-3000:]
        assert "demo 1.0.0 -> 2.0.0 active" in result.stdout
        assert_one_clean_switch(device.results, "1.0.0", "2.0.0")
