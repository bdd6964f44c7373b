"""Print the systemd-analyze exposure of both units and the verify result (quoted in docs/deploy.md).

Usage: python scripts/systemd_report.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy import systemd_check as sc

TARGETS = {sc.AGENT_UNIT: 2.5, sc.COLLECTOR_UNIT: 2.0}


def main() -> int:
    if not sc.available():
        print("systemd-analyze not found")
        return 2
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, check=False)
    print(f"systemd-analyze: {version.stdout.splitlines()[0]}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        staged = sc.stage_units(Path(tmp))
        for unit, target in TARGETS.items():
            level = sc.exposure(staged / unit)
            ok &= level <= target
            print(f"exposure {unit:32s} {level:.1f}  (target <= {target})")
        result = sc.verify(staged)
        ok &= result.clean
        print(f"verify: {'clean' if result.clean else 'FAILED'} (rc={result.returncode})")
        if result.output:
            print(result.output)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
