"""A picamera2 that is installed but cannot be imported is one line naming the fix, never a traceback.

On Raspberry Pi OS the venv sees the OS's picamera2 and simplejpeg, compiled against Debian's
numpy 1.24. A venv that pulled numpy 2 breaks their import with a ValueError ("numpy.dtype size
changed"), an ImportError ("numpy.core.multiarray failed to import") or an AttributeError. Those
cannot be produced here without the OS package, so a small ``picamera2`` package on sys.path
imports a ``simplejpeg`` module that raises exactly what the compiled one raises at import.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.capture import open_source
from agent.errors import CameraError
from tests.support.agentproc import agent_command, write_config
from tests.support.paths import REPO
from tests.unit.capture.helpers import camera

FAKES = ("picamera2", "simplejpeg", "libcamera")
DTYPE_SIZE = (
    "numpy.dtype size changed, may indicate binary incompatibility. "
    "Expected 96 from C header, got 88 from PyObject"
)


def fake_os_picamera2(root: Path, simplejpeg_body: str, libcamera: bool = True) -> Path:
    """picamera2 that imports libcamera and simplejpeg at import, like the real one; simplejpeg runs
    ``simplejpeg_body``. Without ``libcamera`` the import fails as on a venv that cannot see the OS's."""
    package = root / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import libcamera\nimport simplejpeg\n\n\nclass Picamera2:\n    pass\n"
    )
    if libcamera:
        (root / "libcamera.py").write_text("")
    (root / "simplejpeg.py").write_text(simplejpeg_body)
    return root


@pytest.fixture
def os_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory standing in for /usr/lib/python3/dist-packages, first on sys.path for this test;
    the stand-in modules leave sys.modules as they found it."""
    site = tmp_path / "dist-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    saved = {name: sys.modules.pop(name) for name in FAKES if name in sys.modules}
    yield site
    for name in FAKES:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


def open_error(site: Path, body: str, libcamera: bool = True) -> str:
    fake_os_picamera2(site, body, libcamera)
    with pytest.raises(CameraError) as info:
        open_source(camera("picamera2:0"), Path("."))
    return str(info.value)


def test_numpy_abi_mismatch_at_import_is_one_line_naming_the_fix(os_site: Path) -> None:
    message = open_error(os_site, f"raise ValueError({DTYPE_SIZE!r})\n")
    assert "\n" not in message
    assert DTYPE_SIZE in message
    assert f"numpy {__import__('numpy').__version__}" in message
    assert f"{sys.prefix}/bin/pip install 'numpy<2' 'opencv-python-headless<5'" in message
    assert "deploy/constraints/pi-aarch64-cp311.txt" in message


@pytest.mark.parametrize(
    "body",
    [
        "raise ImportError('numpy.core.multiarray failed to import')\n",
        "raise AttributeError('_ARRAY_API not found')\n",
        "raise ModuleNotFoundError(\"No module named 'numpy.core._multiarray_umath'\", "
        "name='numpy.core._multiarray_umath')\n",
    ],
    ids=["import-error", "attribute-error", "numpy-1-module-path"],
)
def test_other_numpy_import_failures_get_the_same_fix(os_site: Path, body: str) -> None:
    message = open_error(os_site, body)
    assert "\n" not in message and "'numpy<2'" in message


def test_a_missing_os_dependency_names_it_and_the_apt_package(os_site: Path) -> None:
    message = open_error(os_site, "", libcamera=False)  # a pip-installed picamera2 without the OS's
    assert message.startswith("picamera2 cannot import libcamera: ")
    assert "sudo apt install python3-picamera2" in message and "--system-site-packages" in message


def test_check_command_prints_the_line_without_a_traceback(tmp_path: Path) -> None:
    """What the technician runs first: `inspection-agent check` lists the camera problem, exit 1."""
    site = fake_os_picamera2(tmp_path / "dist-packages", f"raise ValueError({DTYPE_SIZE!r})\n")
    config = write_config(tmp_path / "work", port=1, prefix="t", source="picamera2:0")
    env = {"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*agent_command(), "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    (line,) = [x for x in output.splitlines() if DTYPE_SIZE in x]
    assert "'numpy<2'" in line
