"""`bench` prints the budget the agent runs under, as a number, wherever it comes from."""

from __future__ import annotations

from pathlib import Path

from agent.commands.bench import _budget_ms
from agent.config import load_config
from agent.model.manifest import read_manifest
from tests.support.paths import DEMO_MODEL


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "cam.yaml"
    path.write_text(
        "device: {id: c, site: s, line: l}\ncamera: {source: 'synthetic:'}\n"
        f"model: {{path: {DEMO_MODEL}}}\n{extra}"
    )
    return path


def test_budget_comes_from_the_manifest_when_the_config_sets_none(tmp_path: Path) -> None:
    expected = read_manifest(DEMO_MODEL / "manifest.yaml").budget_ms
    assert _budget_ms(load_config(config(tmp_path))) == expected == 50


def test_the_config_budget_wins(tmp_path: Path) -> None:
    assert _budget_ms(load_config(config(tmp_path, "inference: {budget_ms: 12.5}\n"))) == 12.5
