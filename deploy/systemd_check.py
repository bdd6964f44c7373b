"""Run ``systemd-analyze verify`` and ``security --offline=yes`` on the shipped units.

``verify`` insists that ExecStart= points at an existing executable, and on a build machine
``/opt/inspection-agent/venv/bin/inspection-agent`` does not exist. ``--root=`` does not help with
systemd 252: it then resolves every unit (sysinit.target …) and /bin/kill inside that root too.
So the units are copied to a scratch directory with the ExecStart binary rewritten to a stub
executable there; everything else is checked exactly as shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNITS_DIR = Path(__file__).resolve().parents[1] / "systemd"
AGENT_UNIT = "inspection-agent@.service"
COLLECTOR_UNIT = "inspection-collector.service"
INSTALLED_BINARY = "/opt/inspection-agent/venv/bin/inspection-agent"
_EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")


@dataclass(frozen=True)
class VerifyResult:
    returncode: int
    output: str

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.output.strip()


def available() -> bool:
    return shutil.which("systemd-analyze") is not None


def stage_units(scratch: Path, units_dir: Path = UNITS_DIR) -> Path:
    """Copy the units into ``scratch/units`` with ExecStart= pointing at a stub executable."""
    stub = scratch / "bin" / "inspection-agent"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = scratch / "units"
    out.mkdir(parents=True, exist_ok=True)
    for unit in (AGENT_UNIT, COLLECTOR_UNIT):
        text = (units_dir / unit).read_text().replace(INSTALLED_BINARY, str(stub))
        (out / unit).write_text(text)
    return out


def verify(staged: Path, instance: str = "cam-01") -> VerifyResult:
    """``systemd-analyze verify`` on an agent instance and the collector; clean means no output."""
    agent = staged / AGENT_UNIT.replace("@.", f"@{instance}.")
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(agent), str(staged / COLLECTOR_UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return VerifyResult(proc.returncode, (proc.stdout + proc.stderr).strip())


def exposure(unit: Path) -> float:
    """The "Overall exposure level" of ``unit`` (0 = locked down, 10 = unprotected)."""
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = _EXPOSURE.search(proc.stdout + proc.stderr)
    if match is None:
        raise RuntimeError(f"no exposure level in systemd-analyze output for {unit}: {proc.stderr.strip()}")
    return float(match.group(1))
