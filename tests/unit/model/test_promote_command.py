"""``inspection-agent model promote``: the shadow version becomes the store's current one (or refused)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from agent.model.store import ModelStore
from tests.support.agentproc import run_agent
from tests.support.paths import DEMO_MODEL


def demo_version(tmp_path: Path, version: str) -> Path:
    root = tmp_path / f"src-{version}"
    shutil.copytree(DEMO_MODEL, root)
    manifest = root / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", f"version: {version}", 1))
    return root


def device(tmp_path: Path, shadow: str | None) -> tuple[ModelStore, Path]:
    store = ModelStore(tmp_path / "store")
    for version in ("1.0.0", "1.1.0"):
        store.install(demo_version(tmp_path, version))
    store.activate("demo-defects", "1.0.0")
    model: dict[str, str] = {"path": str(store.root / "demo-defects" / "current")}
    if shadow is not None:
        model["shadow"] = shadow
    cfg = tmp_path / "agent.yaml"
    doc = {
        "device": {"id": "cam-01", "site": "s", "line": "l"},
        "camera": {"source": "synthetic:"},
        "model": model,
    }
    cfg.write_text(yaml.safe_dump(doc))
    return store, cfg


def test_the_shadow_version_becomes_current(tmp_path: Path) -> None:
    store, cfg = device(tmp_path, str(tmp_path / "store" / "demo-defects" / "1.1.0"))
    proc = run_agent(["model", "promote", "--config", str(cfg), "--reload", "none", "--json"])
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["ok"] and (outcome["previous"], outcome["version"]) == ("1.0.0", "1.1.0")
    assert store.current("demo-defects") == "1.1.0"


def test_no_shadow_or_one_outside_the_store_is_refused_and_nothing_switches(tmp_path: Path) -> None:
    store, cfg = device(tmp_path, None)
    proc = run_agent(["model", "promote", "--config", str(cfg), "--reload", "none"])
    assert proc.returncode == 2 and "model.shadow is not set" in proc.stderr
    _, outside = device(tmp_path / "b", str(DEMO_MODEL))
    proc = run_agent(["model", "promote", "--config", str(outside), "--reload", "none"])
    assert proc.returncode == 2 and "store install" in proc.stderr
    assert store.current("demo-defects") == "1.0.0"
