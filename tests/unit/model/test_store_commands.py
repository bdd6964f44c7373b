"""``inspection-agent store …`` on the device: outcomes, exit codes, and nothing switched on failure."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.model import rollout
from agent.model.store import ModelStore
from tests.unit.deploy.packages import make_package, make_tarball, truncate_model

FAILING_VALIDATE = (
    f"{sys.executable} -c \"import json; print(json.dumps({{'ok': False, 'checks': "
    f"[{{'name': 'latency', 'ok': False, 'detail': 'p99 12 ms over budget'}}]}})); raise SystemExit(1)\""
)


def store_cli(capsys: pytest.CaptureFixture[str], store: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["store", *argv, "--store", str(store), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def install_v2(capsys: Any, store: ModelStore, tmp_path: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    """``store install`` of demo 2.0.0 (a directory) with ``flags``."""
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    return store_cli(capsys, store.root, "install", str(pkg), *flags)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """demo 1.0.0 installed and current, as after deploy/install.sh."""
    s = ModelStore(tmp_path / "store")
    s.install(make_package(tmp_path / "v1", version="1.0.0"))
    s.activate("demo", "1.0.0")
    return s


def test_install_and_activate_without_reload(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    pkg = make_tarball(make_package(tmp_path / "v2", version="2.0.0"))
    code, out = store_cli(
        capsys, store.root, "install", str(pkg), "--no-validate", "--activate", "--reload", "none"
    )
    assert code == 0 and out["ok"], out
    assert out["message"] == "demo 1.0.0 -> 2.0.0 active"
    assert store.current("demo") == "2.0.0" and store.history("demo") == ["1.0.0", "2.0.0"]
    code, out = store_cli(capsys, store.root, "status")
    assert out["details"]["models"] == {
        "demo": {
            "current": "2.0.0",
            "shadow": None,
            "history": ["1.0.0", "2.0.0"],
            "versions": ["1.0.0", "2.0.0"],
        }
    }


def test_install_as_shadow_sets_the_shadow_link_and_prune_keeps_it(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    pkg = make_tarball(make_package(tmp_path / "v2", version="2.0.0"))
    code, out = store_cli(
        capsys, store.root, "install", str(pkg), "--no-validate", "--shadow", "--reload", "none"
    )
    assert code == 0 and out["ok"] and out["message"] == "demo shadow None -> 2.0.0", out
    assert store.current("demo") == "1.0.0" and store.shadow("demo") == "2.0.0"
    assert (store.root / "demo" / "shadow").resolve() == store.root / "demo" / "2.0.0"
    for version in ("3.0.0", "4.0.0"):
        store.install(make_package(tmp_path / version, version=version))
        store.activate("demo", version)
    assert "2.0.0" not in store.prune("demo", keep=1)  # the agent runs the shadow too
    code, out = store_cli(capsys, store.root, "status")
    assert out["details"]["models"]["demo"]["shadow"] == "2.0.0" and "shadow 2.0.0" in out["message"]


def test_store_shadow_switches_clears_and_refuses_bad_input(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    store.install(make_package(tmp_path / "v2", version="2.0.0"))
    code, out = store_cli(capsys, store.root, "shadow", "demo", "2.0.0", "--reload", "none")
    assert code == 0 and store.shadow("demo") == "2.0.0"
    code, out = store_cli(capsys, store.root, "shadow", "demo", "9.9.9", "--reload", "none")
    assert code == 3 and out["step"] == "shadow" and "not installed" in out["message"]
    assert store.shadow("demo") == "2.0.0"  # nothing changed
    code, out = store_cli(capsys, store.root, "shadow", "demo", "--reload", "none")
    assert code == 2 and "--clear" in out["message"]
    code, out = store_cli(capsys, store.root, "shadow", "demo", "--clear", "--reload", "none")
    assert code == 0 and out["previous"] == "2.0.0" and store.shadow("demo") is None
    assert not (store.root / "demo" / "shadow").exists() and store.current("demo") == "1.0.0"


def test_install_alone_does_not_switch(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    code, out = store_cli(capsys, store.root, "install", str(pkg), "--no-validate")
    assert code == 0 and "installed" in out["message"]
    assert store.current("demo") == "1.0.0" and store.versions("demo") == ["1.0.0", "2.0.0"]
    code, out = store_cli(
        capsys, store.root, "install", str(pkg), "--no-validate", "--activate-if-none", "--reload", "none"
    )
    assert code == 0 and store.current("demo") == "1.0.0"


def test_a_damaged_transfer_is_refused(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    pkg = make_tarball(make_package(tmp_path / "v2", version="2.0.0"))
    code, out = store_cli(capsys, store.root, "install", str(pkg), "--sha256", "0" * 64, "--no-validate")
    assert (code, out["step"]) == (1, "transfer")
    assert store.versions("demo") == ["1.0.0"]


def test_a_truncated_model_is_refused(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    truncate_model(pkg)
    code, out = store_cli(
        capsys, store.root, "install", str(pkg), "--no-validate", "--activate", "--reload", "none"
    )
    assert (code, out["step"]) == (1, "verify") and "sha256 mismatch for model.tflite" in out["message"]
    assert store.current("demo") == "1.0.0" and store.versions("demo") == ["1.0.0"]


def test_an_archive_with_too_many_members_never_reaches_the_store(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    bomb = tmp_path / "many.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        tar.add(make_package(tmp_path / "v2", version="2.0.0"), arcname="pkg")
        for i in range(10_001):
            tar.addfile(tarfile.TarInfo(f"pkg/golden/{i}.png"), io.BytesIO(b""))
    code, out = store_cli(
        capsys, store.root, "install", str(bomb), "--no-validate", "--activate", "--reload", "none"
    )
    assert (code, out["step"]) == (1, "verify") and "more than 10000 members" in out["message"]
    assert store.current("demo") == "1.0.0" and store.versions("demo") == ["1.0.0"]
    assert sorted(p.name for p in store.root.iterdir()) == [".lock", "demo"]


def test_failing_validation_is_refused_with_its_reason(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    code, out = install_v2(
        capsys, store, tmp_path, "--validate-cmd", FAILING_VALIDATE, "--activate", "--reload", "none"
    )
    assert (code, out["step"]) == (1, "validate")
    assert out["message"] == "validation failed: latency: p99 12 ms over budget"
    assert store.versions("demo") == ["1.0.0"]


def test_a_validate_command_that_cannot_run_is_refused(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    code, out = store_cli(capsys, store.root, "install", str(pkg), "--validate-cmd", str(tmp_path / "nope"))
    assert (code, out["step"]) == (1, "validate") and out["message"].startswith("cannot run")


def test_a_reload_that_cannot_be_sent_restores_current(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    code, out = install_v2(
        capsys,
        store,
        tmp_path,
        "--no-validate",
        "--activate",
        "--reload",
        f"pid:{tmp_path / 'no.pid'}",
        "--state-file",
        str(tmp_path / "s.json"),
    )
    assert (code, out["step"]) == (3, "reload")
    assert store.current("demo") == "1.0.0"


def test_no_way_to_confirm_means_nothing_is_touched(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    code, out = install_v2(
        capsys, store, tmp_path, "--no-validate", "--activate", "--reload", f"pid:{tmp_path / 'agent.pid'}"
    )
    assert (code, out["step"]) == (2, "config") and "pass --config or --state-file" in out["message"]
    assert store.current("demo") == "1.0.0" and store.versions("demo") == ["1.0.0"]


def test_rollback_and_prune(capsys: Any, store: ModelStore, tmp_path: Path) -> None:
    for v in ("2.0.0", "3.0.0"):
        store.install(make_package(tmp_path / v, version=v))
        store.activate("demo", v)
    code, out = store_cli(capsys, store.root, "rollback", "--reload", "none")
    assert code == 0 and out["message"] == "demo 3.0.0 -> 2.0.0"
    code, out = store_cli(capsys, store.root, "prune", "--keep", "1")
    assert code == 0 and sorted(out["details"]["removed"]) == ["1.0.0", "3.0.0"]
    code, out = store_cli(capsys, store.root, "rollback", "demo", "--reload", "none")
    assert (code, out["step"]) == (3, "rollback") and "no earlier version" in out["message"]


def test_rollback_needs_a_name_when_the_store_holds_several_models(
    capsys: Any, store: ModelStore, tmp_path: Path
) -> None:
    store.install(make_package(tmp_path / "b", name="b"))
    store.activate("b", "1.0.0")
    code, out = store_cli(capsys, store.root, "rollback", "--reload", "none")
    assert (code, out["step"]) == (2, "config") and "holds 2 models (b, demo); name one" in out["message"]


def test_a_failure_without_json_is_one_line_on_stderr(capsys: Any, store: ModelStore) -> None:
    assert main(["store", "activate", "demo", "9.9.9", "--store", str(store.root), "--reload", "none"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "inspection-agent: store: [activate] demo 9.9.9 is not installed"
    )


def test_validate_reason_lists_failed_checks() -> None:
    checks = [
        {"name": "sha256", "ok": True, "detail": ""},
        {"name": "golden", "ok": False, "detail": "ok.png"},
    ]
    assert rollout.validate_reason(json.dumps({"ok": False, "checks": checks}), "") == "golden: ok.png"
    assert rollout.validate_reason("not json", "Traceback\nModelError: bad file\n") == "ModelError: bad file"
    assert rollout.validate_reason("", "") == "no reason given"


def test_unknown_reload_method_is_refused() -> None:
    with pytest.raises(rollout.StepFailed, match="unknown reload method"):
        rollout.reload_agent("carrier-pigeon", None)
    with pytest.raises(rollout.StepFailed, match="systemd needs --config"):
        rollout.reload_agent("systemd", None)


def test_state_file_comes_from_the_agent_config(tmp_path: Path) -> None:
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(
        "device: {id: c, site: s, line: l}\ncamera: {source: 'synthetic:'}\nmodel: {path: m}\n"
        f"state: {{dir: {tmp_path / 'st'}}}\n"
    )
    assert rollout.state_file_for(cfg, None) == tmp_path / "st" / "model-state.json"
    assert rollout.state_file_for(cfg, tmp_path / "x.json") == tmp_path / "x.json"


def test_reload_goes_through_sudo_only_for_the_service_user() -> None:
    unit = "inspection-agent@cam-01.service"
    assert rollout.reload_argv(unit, euid=0) == ["systemctl", "reload", unit]
    if shutil.which("sudo"):
        assert rollout.reload_argv(unit, euid=998) == ["sudo", "-n", "systemctl", "reload", unit]
