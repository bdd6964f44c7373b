"""deploy/install.sh against a temporary root: profiles, refusals, identity, wrapper, users, sudoers.

The platform is what the script reads under ``--root`` (``proc/device-tree/model``,
``etc/nv_tegra_release``, ``etc/hostname``), the machine comes from ``--arch`` (the script's
documented override of the interpreter's own), and Python's version from the interpreter given
with ``--python``: a Python 3.9 cannot exist here, so a two-line stand-in answers the probe as one
would. Nothing is pip-installed except in the last (slow) test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.config import load_config
from agent.model.store import ModelStore, is_complete
from tests.support.paths import REPO
from tests.unit.deploy.packages import make_package

INSTALL = REPO / "deploy" / "install.sh"
SYSUSERS = shutil.which("systemd-sysusers") is not None


def run_install(root: Path, *extra: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(INSTALL), "--root", str(root), "--python", python, *extra]
    if not SYSUSERS:
        argv.append("--no-systemd")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def install(root: Path, *extra: str, demo: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = run_install(root, *extra, *(["--demo-model", str(demo)] if demo else []))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def pi_root(root: Path, hostname: str = "pi5-line3") -> Path:
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text(hostname + "\n")
    return root


def jetson_root(root: Path, release: str = "# R36 (release), REVISION: 3.0, GCID: 36191598") -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(release + "\n")
    (root / "etc/hostname").write_text("orin-line4\n")
    return root


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return make_package(tmp_path / "pkg", name="demo-defects", version="1.0.0")


def test_dry_run_prints_every_action_and_changes_nothing(tmp_path: Path, demo: Path) -> None:
    root = tmp_path / "root"
    out = install(root, "--dry-run", "--arch", "x86_64", demo=demo).stdout
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
    assert "profile x86" in out and f"{REPO}[tflite,onnx]" in out


def test_pi_profile_lays_out_units_config_wrapper_sudoers_and_store(tmp_path: Path, demo: Path) -> None:
    root = pi_root(tmp_path / "root")
    out = install(root, "--skip-pip", "--arch", "aarch64", "--technician", "pi", demo=demo).stdout
    assert "profile pi" in out
    assert (root / "etc/systemd/system/inspection-agent@.service").read_bytes() == (
        REPO / "systemd/inspection-agent@.service"
    ).read_bytes()
    assert not (root / "etc/systemd/system/inspection-collector.service").exists()
    assert (root / "etc/inspection-agent/credentials/mqtt-password").stat().st_mode & 0o777 == 0o600
    store = root / "var/lib/inspection-agent/models"
    assert os.readlink(store / "demo-defects" / "current") == "1.0.0"
    assert is_complete(store / "demo-defects" / "current")
    config = load_config(root / "etc/inspection-agent/cam-01.yaml")
    assert config.device.id == "pi5-line3"  # from the hostname: no two devices share cam-01
    assert config.model.path == "/var/lib/inspection-agent/models/demo-defects/current"
    wrapper = root / "usr/local/bin/inspection-agent"
    assert (
        wrapper.stat().st_mode & 0o111
        and "/opt/inspection-agent/venv/bin/inspection-agent" in wrapper.read_text()
    )
    sudoers = root / "etc/sudoers.d/inspection-agent"
    assert sudoers.stat().st_mode & 0o777 == 0o440
    rules = [line for line in sudoers.read_text().splitlines() if line and not line.startswith("#")]
    assert "%inspection ALL=(inspection) NOPASSWD: /opt/inspection-agent/venv/bin/inspection-agent" in rules
    assert "inspection ALL=(root) NOPASSWD: INSPECTION_RELOAD" in rules
    assert "ALL=(ALL)" not in sudoers.read_text() and "(root) NOPASSWD: ALL" not in sudoers.read_text()
    if shutil.which("visudo"):
        check = subprocess.run(["visudo", "-cf", str(sudoers)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    assert "m pi inspection" in (root / "etc/sysusers.d/inspection-technicians.conf").read_text()
    if SYSUSERS:
        passwd, group = (root / "etc/passwd").read_text(), (root / "etc/group").read_text()
        assert "inspection:" in passwd and "inspection-deploy:" in passwd
        assert "/var/lib/inspection-deploy:/bin/sh" in passwd  # a login shell for SSH, no password
        members = next(line for line in group.splitlines() if line.startswith("inspection:")).split(":")[3]
        assert set(members.split(",")) >= {"inspection-deploy", "pi"}


def test_pi_dry_run_uses_system_site_packages_litert_and_the_pi_pins(tmp_path: Path) -> None:
    out = install(pi_root(tmp_path / "root"), "--dry-run", "--arch", "aarch64").stdout
    assert "-m venv --system-site-packages" in out
    assert f"{REPO}[tflite]" in out
    pins = sorted((REPO / "deploy/constraints").glob("pi-aarch64-cp*.txt"))
    if any(p.name == f"pi-aarch64-cp{sys.version_info[0]}{sys.version_info[1]}.txt" for p in pins):
        assert "-c " + str(REPO / "deploy/constraints/pi-aarch64-cp") in out


def test_identity_flags_go_into_the_new_config(tmp_path: Path) -> None:
    root = pi_root(tmp_path / "root")
    install(
        root, "--skip-pip", "--arch", "aarch64", "--device-id", "cam-a7", "--site", "plant-9", "--line", "l2"
    )
    device = load_config(root / "etc/inspection-agent/cam-01.yaml").device
    assert (device.id, device.site, device.line) == ("cam-a7", "plant-9", "l2")


def test_a_device_id_that_is_not_topic_safe_is_refused(tmp_path: Path) -> None:
    result = run_install(tmp_path / "root", "--dry-run", "--arch", "x86_64", "--device-id", "cam/1")
    assert result.returncode == 2
    assert "--device-id 'cam/1'" in result.stderr and "MQTT client id" in result.stderr


def test_second_run_keeps_config_and_flashed_model(tmp_path: Path, demo: Path) -> None:
    root = pi_root(tmp_path / "root")
    install(root, "--skip-pip", "--arch", "aarch64", demo=demo)
    config = root / "etc/inspection-agent/cam-01.yaml"
    config.write_text(config.read_text().replace("pi5-line3", "cam-07"))
    store = ModelStore(root / "var/lib/inspection-agent/models")
    store.install(make_package(tmp_path / "v2", name="demo-defects", version="2.0.0"))
    store.activate("demo-defects", "2.0.0")

    out = install(root, "--skip-pip", "--arch", "aarch64", "--device-id", "other", demo=demo).stdout
    assert "keeping existing" in out
    assert "+ install -D" not in out  # unchanged files are not copied again
    assert "cam-07" in config.read_text()
    assert store.current("demo-defects") == "2.0.0"
    assert store.history("demo-defects") == ["1.0.0", "2.0.0"]


def test_jetson_uses_the_system_opencv_and_nvidia_onnxruntime(tmp_path: Path) -> None:
    root = jetson_root(tmp_path / "root")
    wheel = "/tmp/onnxruntime_gpu-1.19.0-cp310-linux_aarch64.whl"
    out = install(root, "--dry-run", "--arch", "aarch64", "--ort-wheel", wheel).stdout
    assert "profile jetson" in out
    assert "-m venv --system-site-packages" in out  # JetPack's cv2, built with GStreamer
    install_line = next(line for line in out.splitlines() if "pip install --upgrade" in line)
    assert install_line.endswith(str(REPO)) and "[" not in install_line.rsplit("/", 1)[-1]
    assert "pip uninstall --yes opencv-python-headless" in out
    assert out.index("pip uninstall --yes opencv-python-headless") > out.index("pip install --upgrade")
    assert wheel in out


def test_collector_profile_installs_extras_unit_and_config(tmp_path: Path, demo: Path) -> None:
    root = tmp_path / "root"
    dry = install(root, "--dry-run", "--profile", "collector", "--arch", "x86_64").stdout
    assert f"{REPO}[collector,web]" in dry and "--system-site-packages" not in dry
    install(root, "--profile", "collector", "--skip-pip", "--arch", "x86_64", demo=demo)
    assert (root / "etc/systemd/system/inspection-collector.service").read_bytes() == (
        REPO / "systemd/inspection-collector.service"
    ).read_bytes()
    assert not (root / "etc/systemd/system/inspection-agent@.service").exists()
    assert not (root / "etc/inspection-agent/cam-01.yaml").exists()
    cfg = load_collector_config(root / "etc/inspection-agent/collector.yaml")
    assert cfg.web is not None
    assert not (root / "var/lib/inspection-agent/models/demo-defects").exists()  # no model to run


@pytest.mark.parametrize(
    ("setup", "arch", "reason"),
    [
        (pi_root, "armv7l", "32-bit userland (armv7l, Raspberry Pi 5"),
        (
            lambda r: jetson_root(r, "# R35 (release), REVISION: 4.1"),
            "aarch64",
            "JetPack 5 or older (L4T R35",
        ),
        (lambda r: jetson_root(r, "# R32 (release), REVISION: 7.4"), "aarch64", "ships Python 3.8"),
    ],
)
def test_unsupported_platforms_are_refused_with_the_reason(
    tmp_path: Path, setup: object, arch: str, reason: str
) -> None:
    root = tmp_path / "root"
    setup(root)  # type: ignore[operator]
    result = run_install(root, "--dry-run", "--arch", arch)
    assert result.returncode == 3, result.stdout + result.stderr
    assert reason in result.stderr
    assert "+ " not in result.stdout  # refused before any action


def test_32_bit_refusal_names_the_missing_wheels(tmp_path: Path) -> None:
    result = run_install(pi_root(tmp_path / "root"), "--dry-run", "--arch", "armv7l")
    assert "numpy, OpenCV, PyYAML, LiteRT and onnxruntime" in result.stderr
    assert "Raspberry Pi OS (64-bit)" in result.stderr


def test_python_below_3_10_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho aarch64 64 3.9\n")  # answers install.sh's probe as Python 3.9 would
    old.chmod(0o755)
    result = run_install(pi_root(tmp_path / "root"), "--dry-run", python=str(old))
    assert result.returncode == 3
    assert "Python 3.9" in result.stderr and "requires-python >= 3.10" in result.stderr


def test_unknown_option_and_profile_are_clear_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown option --frobnicate" in result.stderr
    result = run_install(tmp_path / "r", "--dry-run", "--arch", "x86_64", "--profile", "coral")
    assert result.returncode == 2 and "--profile 'coral'" in result.stderr


def cli_stand_in(tmp_path: Path) -> Path:
    """This checkout's CLI at one path, as the venv's console script is on a device."""
    cli = tmp_path / "inspection-agent"
    cli.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m agent "$@"\n')
    cli.chmod(0o755)
    return cli


def wrapper(root: Path, cli: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "INSPECTION_AGENT_CLI": str(cli),
        "INSPECTION_AGENT_ETC": str(root / "etc/inspection-agent"),
    }
    return subprocess.run(
        [str(root / "usr/local/bin/inspection-agent"), *args],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_wrapper_finds_the_config_so_status_needs_no_arguments(tmp_path: Path) -> None:
    root = pi_root(tmp_path / "root")
    install(root, "--skip-pip", "--arch", "aarch64")
    cli = cli_stand_in(tmp_path)
    result = wrapper(root, cli, "status")
    assert result.returncode == 1, result.stderr  # the agent has not run here: status says so
    assert (
        "NOT RUNNING" in result.stdout and "/var/lib/inspection-agent/pi5-line3/health.json" in result.stdout
    )

    (root / "etc/inspection-agent/cam-02.yaml").write_text(
        (root / "etc/inspection-agent/cam-01.yaml").read_text().replace("pi5-line3", "pi5-line3-b")
    )
    several = wrapper(root, cli, "status")
    assert several.returncode == 2
    assert "2 agent configs" in several.stderr and "INSPECTION_AGENT_INSTANCE" in several.stderr
    chosen = wrapper(root, cli, "status", INSPECTION_AGENT_INSTANCE="cam-02")
    assert "pi5-line3-b/health.json" in chosen.stdout
    given = wrapper(root, cli, "status", "--config", str(root / "etc/inspection-agent/cam-01.yaml"))
    assert "pi5-line3/health.json" in given.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_real_pip_install_into_a_venv_under_the_root(tmp_path: Path) -> None:
    """pip really builds and installs this checkout into the root's venv, and the wrapper runs its
    console script. The venv's dependencies (numpy, OpenCV, …) come from the test environment
    through a .pth file, so only the build backend is fetched (pip's isolated build)."""
    root = tmp_path / "root"
    venv = root / "opt/inspection-agent/venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    shared = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test-deps.pth").write_text("\n".join(shared) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = ["bash", str(INSTALL), "--root", str(root), "--python", sys.executable, "--arch", "x86_64"]
    argv += ["--pip-arg=--no-deps", "--pip-arg=--quiet", *([] if SYSUSERS else ["--no-systemd"])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    cli = venv / "bin/inspection-agent"
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import agent; print(agent.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy, not the checkout
    store = root / "var/lib/inspection-agent/models/demo-defects/current"
    assert is_complete(store)  # seeded by the venv's own `store install`
    status = wrapper(root, cli, "status")
    assert status.returncode == 1 and "NOT RUNNING" in status.stdout, status.stdout + status.stderr


def test_io_installs_the_gpio_drop_in_for_the_instance_and_the_io_extra(tmp_path: Path) -> None:
    from deploy import systemd_check as sc

    root = pi_root(tmp_path / "root")
    dry = install(root, "--dry-run", "--arch", "aarch64", "--io", "--instance", "line3").stdout
    assert f"{REPO}[tflite,io]" in dry
    install(root, "--skip-pip", "--arch", "aarch64", "--io", "--instance", "line3")
    units = root / "etc/systemd/system"
    drop_in = units / "inspection-agent@line3.service.d/gpio.conf"
    assert drop_in.read_bytes() == (REPO / "systemd/inspection-agent-gpio.conf").read_bytes()
    if not sc.available():
        pytest.skip("systemd-analyze not installed: the drop-in's parse is not checked")
    # The installed unit plus its drop-in, as systemd would load them: parsed without a warning,
    # and the drop-in really lands (the device ACL gains the GPIO chips).
    staged = sc.stage_units(tmp_path / "scratch", units_dir=REPO / "systemd")
    shutil.copytree(drop_in.parent, staged / drop_in.parent.name)
    result = sc.verify(staged, instance="line3")
    assert result.clean, result.output
    unit = str(staged / "inspection-agent@line3.service")
    report = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    assert "char-gpiochip:rw" in report


def test_io_is_refused_for_the_collector_and_absent_without_the_flag(tmp_path: Path) -> None:
    root = pi_root(tmp_path / "root")
    refused = run_install(root, "--profile", "collector", "--io", "--skip-pip", "--arch", "aarch64")
    assert refused.returncode == 2 and "--io is for a device instance" in refused.stderr
    install(root, "--skip-pip", "--arch", "aarch64")
    assert not list((root / "etc/systemd/system").glob("*.service.d"))
