"""Bad input at start: one clear line naming the cause, a non-zero exit, nothing crashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.support.agentproc import run_agent, write_config
from tests.support.models import make_package, slow_classifier

pytestmark = pytest.mark.integration


@pytest.fixture
def package(tmp_path: Path) -> Path:
    model = slow_classifier(tmp_path / "m.onnx", 1)
    return make_package(
        tmp_path / "pkg", model, name="m", version="1", labels=["ok", "bad", "worse"], width=32, height=32
    )


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    d = tmp_path / "frames"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.zeros((48, 64, 3), np.uint8))
    return d


def _run(config: Path) -> tuple[int, list[str]]:
    out = run_agent(["run", "--config", str(config)], timeout=60)
    errors = [line for line in out.stderr.splitlines() if line.startswith("inspection-agent:")]
    return out.returncode, errors


def _config(tmp_path: Path, source: str, package: Path) -> Path:
    # Port 9 (discard) is never an MQTT broker: start-up errors come before any connection matters.
    return write_config(tmp_path / "work", port=9, prefix="bad", source=source, package=package)


def test_missing_model_file(tmp_path: Path, package: Path, frames: Path) -> None:
    (package / "model.onnx").unlink()
    code, errors = _run(_config(tmp_path, f"dir:{frames}", package))
    assert code == 3 and len(errors) == 1 and "model file model.onnx is missing" in errors[0]


def test_corrupt_model_file_with_matching_checksum(tmp_path: Path, package: Path, frames: Path) -> None:
    garbage = b"\x00garbage, not an onnx graph" * 10
    (package / "model.onnx").write_bytes(garbage)
    manifest = yaml.safe_load((package / "manifest.yaml").read_text())
    manifest["sha256"] = hashlib.sha256(garbage).hexdigest()
    (package / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    code, errors = _run(_config(tmp_path, f"dir:{frames}", package))
    assert code == 3 and len(errors) == 1 and "model.onnx is not a loadable ONNX model" in errors[0]


def test_sha256_mismatch(tmp_path: Path, package: Path, frames: Path) -> None:
    with (package / "model.onnx").open("ab") as fh:
        fh.write(b"tampered")
    code, errors = _run(_config(tmp_path, f"dir:{frames}", package))
    assert code == 3 and len(errors) == 1 and "sha256 mismatch for model.onnx" in errors[0]


def test_unreadable_video(tmp_path: Path, package: Path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video")
    code, errors = _run(_config(tmp_path, f"video:{bad}", package))
    assert code == 3 and len(errors) == 1 and str(bad) in errors[0]


def test_missing_video(tmp_path: Path, package: Path) -> None:
    code, errors = _run(_config(tmp_path, f"video:{tmp_path / 'nope.mp4'}", package))
    assert code == 3 and len(errors) == 1 and "nope.mp4" in errors[0]


def test_malformed_yaml(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("device: {id: cam-01\ncamera: [\n")
    code, errors = _run(config)
    assert code == 2 and len(errors) == 1
    assert (
        errors[0].startswith(f"inspection-agent: config error: {config}:") and "malformed YAML" in errors[0]
    )


def test_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "device: {id: cam-01, site: a, line: b}\ncamera: {source: 'ftp://x', fps: 0}\nmodel: {}\n"
    )
    code, errors = _run(config)
    assert code == 2
    assert any("camera.source: unknown camera source" in e for e in errors)
    assert any("model.path: missing required key" in e for e in errors)


def test_check_lists_every_problem(tmp_path: Path, package: Path) -> None:
    (package / "model.onnx").write_bytes(b"x")
    config = _config(tmp_path, f"video:{tmp_path / 'nope.mp4'}", package)
    out = run_agent(["check", "--config", str(config)], timeout=60)
    assert out.returncode == 1
    failed = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failed] == ["FAIL model", "FAIL camera", "FAIL broker"], out.stdout
