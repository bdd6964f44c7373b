"""deploy/install.sh: dry run, install into a temp root, idempotence, platform detection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from agent.model.store import ModelStore, is_complete
from tests.support.paths import REPO
from tests.unit.deploy.packages import make_package

INSTALL = REPO / "deploy" / "install.sh"


def install(root: Path, *extra: str, demo: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(INSTALL), "--root", str(root), "--python", sys.executable, *extra]
    if demo is not None:
        argv += ["--demo-model", str(demo)]
    if shutil.which("systemd-sysusers") is None:
        argv.append("--no-systemd")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return make_package(tmp_path / "pkg", name="demo-defects", version="1.0.0")


def test_dry_run_prints_every_action_and_changes_nothing(tmp_path: Path, demo: Path) -> None:
    root = tmp_path / "root"
    out = install(root, "--dry-run", demo=demo).stdout
    assert not root.exists()
    for action in (
        "-m venv",
        "pip install --upgrade",
        "inspection-agent@.service",
        "sysusers.d",
        "cam-01.yaml",
    ):
        assert action in out
    assert "mqtt-password" in out and "-m agent store install" in out and "--activate-if-none" in out


def test_install_into_a_root_lays_out_units_config_and_store(tmp_path: Path, demo: Path) -> None:
    root = tmp_path / "root"
    install(root, "--no-pip", demo=demo)
    assert (root / "etc/systemd/system/inspection-agent@.service").read_bytes() == (
        REPO / "systemd/inspection-agent@.service"
    ).read_bytes()
    assert (root / "usr/lib/sysusers.d/inspection-agent.conf").is_file()
    assert (root / "etc/inspection-agent/credentials/mqtt-password").stat().st_mode & 0o777 == 0o600
    store = root / "var/lib/inspection-agent/models"
    assert os.readlink(store / "demo-defects" / "current") == "1.0.0"
    assert is_complete(store / "demo-defects" / "current")
    config = load_config(root / "etc/inspection-agent/cam-01.yaml")
    assert config.model.path == "/var/lib/inspection-agent/models/demo-defects/current"
    if shutil.which("systemd-sysusers"):
        assert "inspection:" in (root / "etc/passwd").read_text()
        assert "video:" in (root / "etc/group").read_text()


def test_second_run_keeps_config_and_flashed_model(tmp_path: Path, demo: Path) -> None:
    root = tmp_path / "root"
    install(root, "--no-pip", demo=demo)
    config = root / "etc/inspection-agent/cam-01.yaml"
    config.write_text(config.read_text().replace("cam-01", "cam-07"))
    store = ModelStore(root / "var/lib/inspection-agent/models")
    store.install(make_package(tmp_path / "v2", name="demo-defects", version="2.0.0"))
    store.activate("demo-defects", "2.0.0")

    out = install(root, "--no-pip", demo=demo).stdout
    assert "keeping existing" in out
    assert "+ install -D" not in out  # unchanged files are not copied again
    assert "cam-07" in config.read_text()
    assert store.current("demo-defects") == "2.0.0"
    assert store.history("demo-defects") == ["1.0.0", "2.0.0"]


def test_raspberry_pi_gets_litert_and_system_site_packages(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    out = install(root, "--dry-run").stdout
    assert "platform raspberrypi" in out
    assert "--system-site-packages" in out
    assert f"{REPO}[tflite]" in out


def test_jetson_skips_pypi_onnxruntime_and_installs_nvidia_wheel(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0\n")
    out = install(
        root, "--dry-run", "--ort-wheel", "/tmp/onnxruntime_gpu-1.19.0-cp310-linux_aarch64.whl"
    ).stdout
    assert "platform jetson" in out
    assert f"pip install --upgrade {REPO}\n" in out
    assert "onnxruntime_gpu-1.19.0" in out


def test_unknown_option_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr
