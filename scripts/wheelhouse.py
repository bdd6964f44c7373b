#!/usr/bin/env python3
"""Build an offline wheelhouse for one platform: the agent's wheel and every pinned dependency.

For plants without internet: run this on any machine that reaches the package index (the target
platform need not match: pip downloads the wheels for the profile's CPU, glibc and Python), copy
the directory to the device, and install with no index at all:

    python scripts/wheelhouse.py pi-aarch64-cp311                 # -> wheelhouse/pi-aarch64-cp311/
    python scripts/wheelhouse.py x86_64-cp311 --extras tflite,onnx,metrics --out /media/usb/wh
    # on the device:
    python3 -m venv --system-site-packages /opt/inspection-agent/venv
    /opt/inspection-agent/venv/bin/pip install --no-index --find-links WH -c WH/constraints.txt \\
        'edge-inspection-agent[tflite]'

The wheel is built with ``python -m build`` (the ``build`` package, in the dev extra); the
dependencies come from ``pip download --only-binary=:all: --platform … --python-version … -c
deploy/constraints/PROFILE.txt``, so the wheelhouse holds exactly the pinned versions. The
constraints file and an INSTALL.txt with the install command are written beside the wheels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from pin import PROFILES, REPO, Profile

PROJECT = "edge-inspection-agent"


def build_wheel(out: Path, isolation: bool) -> Path:
    """The agent's own wheel, built from this checkout into ``out``."""
    before = set(out.glob("edge_inspection_agent-*.whl"))
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)]
    if not isolation:
        cmd.insert(4, "--no-isolation")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    built = sorted(out.glob("edge_inspection_agent-*.whl"), key=lambda p: p.stat().st_mtime)
    if not built:
        raise SystemExit(f"wheelhouse: python -m build made no wheel in {out}")
    fresh = [p for p in built if p not in before]
    return (fresh or built)[-1]


def download(profile: Profile, wheel: Path, extras: list[str], out: Path) -> None:
    """Every dependency of ``wheel[extras]`` for the profile's platform, at the pinned versions."""
    target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(out)]
    cmd += [*profile.pip_target(), "-c", str(profile.path), target]
    subprocess.run(cmd, check=True)


def install_text(profile: Profile, extras: list[str]) -> str:
    spec = f"{PROJECT}[{','.join(extras)}]" if extras else PROJECT
    site = " --system-site-packages" if profile.name.startswith(("pi-", "jetson-")) else ""
    return (
        f"Offline wheelhouse for {profile.title}, CPython {profile.python}, extras [{','.join(extras)}].\n"
        f"Copy this directory to the device as WH, then:\n\n"
        f"  python3 -m venv{site} /opt/inspection-agent/venv\n"
        f"  /opt/inspection-agent/venv/bin/pip install --no-index --find-links WH "
        f"-c WH/constraints.txt '{spec}'\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", choices=sorted(PROFILES))
    parser.add_argument("--extras", help="comma-separated extras (default: what the profile installs)")
    parser.add_argument("--out", type=Path, help="default: wheelhouse/PROFILE")
    parser.add_argument(
        "--no-isolation", action="store_true", help="build the wheel with this Python's setuptools"
    )
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    extras = profile.default_extras if args.extras is None else args.extras.split(",")
    extras = [e.strip() for e in extras if e.strip()]
    out = (args.out or REPO / "wheelhouse" / profile.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out, isolation=not args.no_isolation)
    print(f"wheelhouse: built {wheel.name}", flush=True)
    download(profile, wheel, extras, out)
    shutil.copyfile(profile.path, out / "constraints.txt")
    text = install_text(profile, extras)
    (out / "INSTALL.txt").write_text(text)
    wheels = sorted(out.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) / 2**20
    print(f"wheelhouse: {len(wheels)} wheels, {size:.0f} MiB in {out}\n\n{text}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
