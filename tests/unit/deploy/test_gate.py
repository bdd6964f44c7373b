"""``deploy/flash-model --require-gate REPORT``: checked on the operator side, before any host is contacted.

The script imports nothing from the agent, so it restates the gate's identity rule; these tests
hold it to the agent's own ``verify_gate_report`` on the same packages and reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.errors import AgentError
from agent.model.evaluate import package_digest
from agent.model.gate import verify_gate_report
from deploy import fleet
from tests.support.paths import REPO, free_port
from tests.unit.deploy.packages import make_package, make_tarball


def report(path: Path, package: Path, *, passed: bool = True, failed: tuple[str, ...] = ()) -> Path:
    doc: dict[str, Any] = {
        "passed": passed,
        "champion": {"sha256": "0" * 64},
        "challenger": {"sha256": package_digest(package)},
        "gate": {"failed": [{"name": name} for name in failed]},
    }
    path.write_text(json.dumps(doc))
    return path


def flash(package: Path, gate: Path) -> subprocess.CompletedProcess[str]:
    """The real script, at a host whose SSH port nothing listens on: a refused gate never gets there."""
    argv = [sys.executable, str(REPO / "deploy" / "flash-model"), str(package), "127.0.0.1"]
    argv += ["--ssh-port", str(free_port()), "--require-gate", str(gate)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_a_report_that_did_not_pass_is_refused_before_any_host(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    proc = flash(pkg, report(tmp_path / "r.json", pkg, passed=False, failed=("min_recall.defect",)))
    assert proc.returncode == fleet.REFUSED, proc.stderr
    assert "did not pass: min_recall.defect" in proc.stderr and "127.0.0.1" not in proc.stdout


def test_a_report_made_for_another_package_is_refused(tmp_path: Path) -> None:
    mine, other = make_package(tmp_path, version="2.0.0"), make_package(tmp_path, version="1.9.0")
    proc = flash(make_tarball(mine), report(tmp_path / "r.json", other))
    assert proc.returncode == fleet.REFUSED and "made for another package" in proc.stderr


def test_a_missing_or_malformed_report_is_refused(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    assert "cannot read the gate report" in flash(pkg, tmp_path / "none.json").stderr
    (tmp_path / "bad.json").write_text('{"passed": true}')
    proc = flash(pkg, tmp_path / "bad.json")
    assert proc.returncode == fleet.REFUSED and "not a `model compare` report" in proc.stderr


def test_a_passing_report_for_this_package_lets_the_flash_go_on(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    proc = flash(pkg, report(tmp_path / "r.json", pkg))
    assert proc.returncode == fleet.SSH_FAILED, proc.stderr  # it went on to the host
    assert "127.0.0.1: FAILED [ssh]" in proc.stdout


@pytest.mark.parametrize("tarball", [False, True], ids=["directory", "tarball"])
@pytest.mark.parametrize("case", ["passed", "not_passed", "other_package"])
def test_the_script_and_the_agent_agree(tmp_path: Path, tarball: bool, case: str) -> None:
    pkg, other = make_package(tmp_path, version="2.0.0"), make_package(tmp_path, version="1.0.0")
    doc = report(tmp_path / "r.json", other if case == "other_package" else pkg, passed=case != "not_passed")
    try:
        verify_gate_report(doc, pkg)
        agent_ok = True
    except AgentError:
        agent_ok = False
    try:
        digest = fleet.check_gate(doc, make_tarball(pkg) if tarball else pkg)
        script_ok = True
    except fleet.GateRefused:
        digest, script_ok = None, False
    assert agent_ok == script_ok == (case == "passed")
    assert digest in (None, package_digest(pkg))
