"""The operator side of a flash: the device's JSON outcome becomes a line and an exit code per host."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from deploy import fleet
from tests.support.paths import REPO
from tests.unit.deploy.packages import make_package, make_tarball

HOST = fleet.Host("cam-01")


def result(stdout: str, stderr: str = "", code: int = 0) -> fleet.HostResult:
    return fleet._result(HOST, subprocess.CompletedProcess(["ssh"], code, stdout, stderr))


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ('{"ok": true, "step": "done", "message": "demo 1 -> 2 active", "details": {}}', 0),
        ('{"ok": false, "step": "verify", "message": "sha256 mismatch", "details": {}}', fleet.REFUSED),
        ('{"ok": false, "step": "reload", "message": "no agent", "details": {}}', fleet.RELOAD_FAILED),
        (
            '{"ok": false, "step": "confirm", "message": "x", "details": {"state": "failed"}}',
            fleet.ROLLED_BACK,
        ),
        ('{"ok": false, "step": "confirm", "message": "did not report", "details": {}}', fleet.TIMEOUT),
    ],
)
def test_outcome_maps_to_the_documented_exit_code(outcome: str, code: int) -> None:
    r = result("progress\n" + outcome + "\n", code=1)
    assert r.code == code and r.ok == (code == 0)
    assert r.line().startswith("cam-01: OK [done]" if code == 0 else "cam-01: FAILED [")


def test_no_outcome_reports_the_last_error_line() -> None:
    assert result("", "Warning\nssh: connect to host cam-01: Connection refused\n", 255).line() == (
        "cam-01: FAILED [ssh] ssh: connect to host cam-01: Connection refused"
    )
    r = result("", "sh: 1: /opt/inspection-agent/venv/bin/inspection-agent: not found\n", 127)
    assert (r.step, r.code) == ("device", 127)


def test_a_directory_is_sent_as_a_tarball_under_its_own_name(tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "src")
    archive = fleet.archive_of(pkg, tmp_path)
    with tarfile.open(archive) as tar:
        assert f"{pkg.name}/manifest.yaml" in tar.getnames()
    tarball = make_tarball(pkg)
    assert fleet.archive_of(tarball, tmp_path) == tarball
    with pytest.raises(fleet.InventoryError, match="not a package directory"):
        fleet.archive_of(tmp_path, tmp_path)


def test_the_remote_command_quotes_arguments_and_cleans_up() -> None:
    conn = fleet.Connection(device_cli="/opt/x/inspection-agent")
    cmd = conn.staged(conn.store_command("install", "--config", "/etc/a b.yaml", package='"$d/package"'))
    assert "trap 'rm -rf \"$d\"' EXIT" in cmd
    assert cmd.endswith(
        "/opt/x/inspection-agent store install \"$d/package\" --config '/etc/a b.yaml' --json"
    )


def test_scripts_run_from_a_bare_checkout_without_the_agent_package(tmp_path: Path) -> None:
    """Only deploy/ is copied, and importing ``agent`` fails: the scripts need neither."""
    bare = tmp_path / "checkout" / "deploy"
    bare.mkdir(parents=True)
    for name in ("flash-model", "rollback", "fleet.py"):
        (bare / name).write_bytes((REPO / "deploy" / name).read_bytes())
    poison = tmp_path / "poison" / "agent"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('operator scripts must not import agent')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent)}
    for script in ("flash-model", "rollback"):
        argv = [sys.executable, str(bare / script)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
        assert proc.returncode == 2, proc.stderr
        assert "no hosts" in proc.stderr or "required" in proc.stderr
    assert not (REPO / "deploy" / "__init__.py").exists()
