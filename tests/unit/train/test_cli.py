"""``inspection-agent train`` refuses bad arguments with one line, before TensorFlow is even loaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.agentproc import agent_command


def train(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [*agent_command(), "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_an_existing_out_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = train("--data", tmp_path, "--base", tmp_path / "b.keras", "--out", out, "--version", "2.0.0")
    assert done.returncode == 3
    assert done.stderr.strip() == (
        f"inspection-agent: error: --out {out} already exists; choose another directory "
        "or pass --force to replace it"
    )
    assert (out / "keep.txt").read_text() == "mine"


def test_a_missing_base_model_is_a_clear_error(tmp_path: Path) -> None:
    done = train(
        "--data", tmp_path, "--base", tmp_path / "nope.keras", "--out", tmp_path / "o", "--version", "1"
    )
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"inspection-agent: error: base model {tmp_path / 'nope.keras'} does not exist"
    )
    assert "nothing is downloaded" in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_package_without_a_float_model_cannot_be_a_base(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    done = train("--data", tmp_path, "--base", tmp_path / "pkg", "--out", tmp_path / "o", "--version", "1")
    assert done.returncode == 3 and "ships no float model (training/float.keras)" in done.stderr


def test_a_bad_train_config_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("epochs: many\n")
    done = train("--data", tmp_path, "--base", tmp_path / "b.keras", "--out", tmp_path / "o",
                 "--version", "1", "--config", config)  # fmt: skip
    assert done.returncode == 2 and f"{config}:1: epochs:" in done.stderr
