"""The device side of a flash: reasons from validate, reload methods, waiting on model-state.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent import modelstore as ms
from deploy import device_flash as df
from tests.unit.deploy.packages import make_package


def test_validate_reason_lists_failed_checks() -> None:
    checks = [
        {"name": "sha256", "ok": True, "detail": ""},
        {"name": "golden", "ok": False, "detail": "ok.png: got scratch"},
    ]
    report = {"ok": False, "checks": checks}
    assert df._validate_reason(json.dumps(report), "") == "golden: ok.png: got scratch"
    assert df._validate_reason("not json", "Traceback\nModelError: bad file\n") == "ModelError: bad file"
    assert df._validate_reason("", "") == "no reason given"


def test_unknown_reload_method_is_refused() -> None:
    with pytest.raises(df.Refused, match="unknown reload method"):
        df.reload_agent("carrier-pigeon", None)
    with pytest.raises(df.Refused, match="systemd needs --config"):
        df.reload_agent("systemd", None)


def test_reload_with_unreadable_pidfile_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pid").write_text("not-a-pid")
    with pytest.raises(df.Refused, match="cannot signal the agent") as err:
        df.reload_agent(f"pid:{tmp_path / 'pid'}", None)
    assert err.value.code == df.RELOAD_FAILED


def test_wait_ignores_stale_and_half_written_state(tmp_path: Path) -> None:
    state = tmp_path / "model-state.json"
    now = int(time.time() * 1000)
    state.write_text(json.dumps({"state": "active", "name": "demo", "version": "2.0.0", "ts": now - 60_000}))
    with pytest.raises(df.Refused, match=r"did not report demo 2\.0\.0"):
        df.wait_for_state(state, "demo", "2.0.0", now, timeout_s=0.3)
    state.write_text('{"state": "act')
    with pytest.raises(df.Refused):
        df.wait_for_state(state, "demo", "2.0.0", now, timeout_s=0.3)
    state.write_text(json.dumps({"state": "active", "name": "demo", "version": "2.0.0", "ts": now + 1}))
    assert df.wait_for_state(state, "demo", "2.0.0", now, timeout_s=5)["state"] == "active"


def test_wait_returns_a_rollback_report(tmp_path: Path) -> None:
    state = tmp_path / "model-state.json"
    now = int(time.time() * 1000)
    state.write_text(json.dumps({"state": "rolled_back", "name": "demo", "version": "1.0.0", "ts": now}))
    assert df.wait_for_state(state, "demo", "2.0.0", now, timeout_s=5)["state"] == "rolled_back"


def test_rollback_needs_a_name_when_the_store_holds_several_models(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name in ("a", "b"):
        ms.install_package(make_package(tmp_path / name, name=name), store)
        ms.activate(store, name, "1.0.0")
    outcome = df.rollback(df.parser().parse_args(["rollback", "--store", str(store), "--reload", "none"]))
    assert not outcome.ok and "holds 2 models (a, b); pass --name" in outcome.message


def test_status_lists_models(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ms.install_package(make_package(tmp_path), store)
    ms.activate(store, "demo", "1.0.0")
    outcome = df.status(df.parser().parse_args(["status", "--store", str(store)]))
    assert outcome.details["models"] == {"demo": {"current": "1.0.0", "history": ["1.0.0"]}}


def test_state_file_comes_from_the_agent_config(tmp_path: Path) -> None:
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(
        "device: {id: c, site: s, line: l}\ncamera: {source: 'synthetic:'}\nmodel: {path: m}\n"
        f"state: {{dir: {tmp_path / 'st'}}}\n"
    )
    args = df.parser().parse_args(["flash", "--package", "p", "--config", str(cfg)])
    assert df.state_file_for(args) == tmp_path / "st" / "model-state.json"
