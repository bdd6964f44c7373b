"""The documented installs, done for real: the agent's wheel into a fresh venv, with the pinned sets.

- From an offline wheelhouse (scripts/wheelhouse.py, x86_64 pins): the venv installs with
  ``--no-index`` and no pip configuration at all, so nothing can come from anywhere else.
- From the built wheel with the Raspberry Pi pins (numpy 1, OpenCV 4) on this x86_64 machine: the
  same Python-level combination a Pi runs, so the agent is proven to work with it.

Each venv then runs ``inspection-agent check`` on the demo setup (the committed demo model, a
conveyor clip, a real mosquitto) and ``model validate`` on the demo package (golden outputs), from
a directory outside the checkout and without PYTHONPATH, so only the installed wheel is imported.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agentproc import write_config
from tests.support.mosquitto import Mosquitto
from tests.support.paths import DEMO_MODEL, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.network]

SCRIPTS = REPO / "scripts"
CONSTRAINTS = REPO / "deploy" / "constraints"


def device_env(offline: bool = True) -> dict[str, str]:
    """A device's environment: no PYTHONPATH into the checkout (pip would see the checkout's
    egg-info as the agent already installed); offline, no pip configuration of this machine either."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if offline:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{output[-4000:]}"
    return output


def fresh_venv(path: Path) -> Path:
    """A venv from this interpreter's base Python (CPython 3.11 here, as the x86_64-cp311 pins)."""
    run([sys.executable, "-m", "venv", path], cwd=path.parent)
    return path / "bin"


def demo_clip(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_demo_clip", SCRIPTS / "make_demo_clip.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault("make_demo_clip", importlib.util.module_from_spec(spec))
    if not hasattr(module, "write_clip"):  # registered first: its dataclasses look themselves up there
        spec.loader.exec_module(module)
    module.write_clip(path, frames=20, width=640, height=480, fps=30.0, seed=7, codec="mjpg")
    return path


def assert_installed_agent_works(bin_dir: Path, work: Path, broker: Mosquitto, prefix: str) -> None:
    env = device_env()
    where = run([bin_dir / "python", "-c", "import agent; print(agent.__file__)"], cwd=work, env=env)
    assert str(bin_dir.parent) in where and str(REPO) not in where, where
    run([bin_dir / "pip", "check"], cwd=work, env=env)
    clip = demo_clip(work / "conveyor.avi")
    config = write_config(work / "cfg", port=broker.port, prefix=prefix, source=f"video:{clip}")
    out = run([bin_dir / "inspection-agent", "check", "--config", config], cwd=work, env=env)
    results = [line for line in out.splitlines() if line.startswith(("ok ", "FAIL"))]
    assert results and all(line.startswith("ok ") for line in results), out
    assert any(line.split()[1] == "broker:" for line in results), out
    run([bin_dir / "inspection-agent", "model", "validate", DEMO_MODEL], cwd=work, env=env)


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build --wheel`` as the docs say, once for this module."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO], cwd=dist)
    (wheel,) = dist.glob("edge_inspection_agent-*-py3-none-any.whl")
    return wheel


def test_offline_wheelhouse_installs_with_no_index_and_passes_check(
    tmp_path: Path, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    wh = tmp_path / "wheelhouse"
    script = SCRIPTS / "wheelhouse.py"
    run([sys.executable, script, "x86_64-cp311", "--extras", "tflite,onnx", "--out", wh], cwd=tmp_path)
    assert (wh / "constraints.txt").read_text() == (CONSTRAINTS / "x86_64-cp311.txt").read_text()
    assert "--no-index --find-links WH -c WH/constraints.txt" in (wh / "INSTALL.txt").read_text()
    bin_dir = fresh_venv(tmp_path / "venv")
    spec = "edge-inspection-agent[tflite,onnx]"
    install = ["install", "--no-index", "--find-links", wh, "-c", wh / "constraints.txt", spec]
    run([bin_dir / "pip", *install], cwd=tmp_path, env=device_env())
    pins = run([bin_dir / "pip", "freeze"], cwd=tmp_path, env=device_env())
    assert "numpy==2." in pins and "opencv-python-headless==5." in pins, pins
    assert_installed_agent_works(bin_dir, tmp_path, mosquitto, unique_prefix)


def test_built_wheel_with_the_pi_pins_runs_on_numpy_1(
    tmp_path: Path, built_wheel: Path, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    pins = CONSTRAINTS / "pi-aarch64-cp311.txt"
    install = ["install", "-c", pins, f"{built_wheel}[tflite,onnx]"]
    run([bin_dir / "pip", *install], cwd=tmp_path, env=device_env(offline=False))
    versions = run([bin_dir / "python", "-c", "import numpy, cv2; print(numpy.__version__, cv2.__version__)"],
                   cwd=tmp_path, env=device_env())  # fmt: skip
    numpy_version, cv2_version = versions.split()
    assert numpy_version.startswith("1.") and cv2_version.startswith("4."), versions
    assert_installed_agent_works(bin_dir, tmp_path, mosquitto, unique_prefix)
