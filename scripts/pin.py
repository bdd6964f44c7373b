#!/usr/bin/env python3
"""Regenerate the pinned dependency sets in deploy/constraints/, one per supported platform.

Why: pyproject.toml only gives lower bounds, so two devices installed a month apart would get
different major versions (OpenCV 4 vs 5, LiteRT 1.x vs 2.x). Each profile below is resolved by
``uv pip compile`` for its own CPU, glibc and Python, with every extra a machine of that kind may
install (``dev`` and ``train`` are for build machines and never pinned here). The files are pip
constraints: ``pip install -c deploy/constraints/PROFILE.txt 'edge-inspection-agent[tflite]'``
installs only what the extras ask for, at the pinned versions.

    python scripts/pin.py                         # re-resolve, keeping every pin that is still valid
    python scripts/pin.py --upgrade               # move every pin to the newest allowed version
    python scripts/pin.py --upgrade-package numpy # move one package
    python scripts/pin.py --profile x86_64-cp311  # one profile only

Needs ``uv`` (in the dev extra) and the package index. ``scripts/wheelhouse.py`` and
``tests/unit/deploy/test_constraints.py`` import the profile table from here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the dev extra installs tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "deploy" / "constraints"
BUILD_ONLY_EXTRAS = frozenset({"dev", "train"})
REGENERATE = "python scripts/pin.py"


@dataclass(frozen=True)
class Profile:
    """A supported platform: CPU, the oldest glibc among its OS releases, and the OS's Python."""

    name: str
    title: str
    arch: str
    glibc_minor: int
    python: str
    default_extras: tuple[str, ...]
    skip_extras: frozenset[str] = frozenset()
    inputs: tuple[str, ...] = ()  # extra constraint files in deploy/constraints/, e.g. numpy1.in
    other_pythons: tuple[str, ...] = ()  # OS releases whose Python differs: the same pins must install

    @property
    def path(self) -> Path:
        return CONSTRAINTS / f"{self.name}.txt"

    @property
    def uv_platform(self) -> str:
        return f"{self.arch}-manylinux_2_{self.glibc_minor}"

    def pip_platforms(self) -> list[str]:
        """Every wheel platform tag this OS accepts: pip's --platform does not expand manylinux_2_X."""
        tags = [f"manylinux2014_{self.arch}"]
        tags += [f"manylinux_2_{minor}_{self.arch}" for minor in range(17, self.glibc_minor + 1)]
        return tags

    def pip_target(self, python: str | None = None) -> list[str]:
        """pip arguments that resolve for this platform instead of the running one (wheels only)."""
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python or self.python]
        for tag in self.pip_platforms():
            args += ["--platform", tag]
        return args


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="pi-aarch64-cp311",
            title="Raspberry Pi OS 64-bit Bookworm (Debian 12), Pi 4/5",
            arch="aarch64",
            glibc_minor=36,
            python="3.11",
            default_extras=("tflite",),
            # The venv sees the OS's picamera2/simplejpeg (built against Debian's numpy 1.24): numpy 1 only.
            inputs=("numpy1.in",),
        ),
        Profile(
            name="jetson-jp6-aarch64-cp310",
            title="NVIDIA Jetson Orin, JetPack 6 (Ubuntu 22.04)",
            arch="aarch64",
            glibc_minor=35,
            python="3.10",
            default_extras=(),
            # onnxruntime comes from NVIDIA's Jetson wheel (CUDA/TensorRT); PyPI's would shadow it.
            skip_extras=frozenset({"onnx"}),
            # JetPack's OpenCV (with GStreamer) is built against Ubuntu's numpy 1.21: numpy 1 only.
            inputs=("numpy1.in",),
        ),
        Profile(
            name="x86_64-cp311",
            title="x86_64 Debian 12; Ubuntu 24.04 (Python 3.12) with the same pins (test rigs, collector)",
            arch="x86_64",
            glibc_minor=36,
            python="3.11",
            default_extras=("tflite", "onnx"),
            other_pythons=("3.12",),
        ),
        Profile(
            # Its own file: numpy and others dropped Python 3.10 in releases the cp311 set pins.
            name="x86_64-cp310",
            title="x86_64 Ubuntu 22.04 (Python 3.10)",
            arch="x86_64",
            glibc_minor=35,
            python="3.10",
            default_extras=("tflite", "onnx"),
        ),
    )
}


def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def extras_for(profile: Profile) -> list[str]:
    """Every extra in pyproject.toml now (so new ones are pinned without editing this table)."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = set(project.get("optional-dependencies", {}))
    return sorted(extras - BUILD_ONLY_EXTRAS - profile.skip_extras)


def compile_command(profile: Profile, upgrade: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "--quiet"]
    cmd += [f"--extra={extra}" for extra in extras_for(profile)]
    for name in ("common.in", *profile.inputs):
        cmd.append(f"--constraint={(CONSTRAINTS / name).relative_to(REPO)}")
    cmd += ["--python-platform", profile.uv_platform, "--python-version", profile.python]
    cmd += ["--no-build", "--custom-compile-command", REGENERATE]
    cmd += ["--output-file", str(profile.path.relative_to(REPO)), *upgrade]
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES), help="default: all")
    parser.add_argument("--upgrade", action="store_true", help="newest allowed version of everything")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    upgrade = ["--upgrade"] if args.upgrade else []
    upgrade += [f"--upgrade-package={name}" for name in args.upgrade_package]
    # --no-build: every pin must be a wheel, so uv never needs (or downloads) a Python of that version.
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    for name in args.profile or sorted(PROFILES):
        profile = PROFILES[name]
        print(f"pin: {profile.path.relative_to(REPO)} ({profile.title}, Python {profile.python})", flush=True)
        done = subprocess.run(compile_command(profile, upgrade), cwd=REPO, env=env, check=False)
        if done.returncode != 0:
            print(f"pin: uv could not resolve {name} (see above)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
