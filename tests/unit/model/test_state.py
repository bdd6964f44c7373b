"""model-state.json: one writer (the agent's hot swap), one reader (``store activate``), one contract."""

from __future__ import annotations

import json
from pathlib import Path

from agent.model import state as model_state
from agent.model.state import ModelState


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = model_state.path_in(tmp_path / "st")
    record = ModelState("rolled_back", "demo", "1.0.0", "ab" * 32, "2.0.0", "3 of 20 frames NaN")
    model_state.write(path, record)
    assert path.name == "model-state.json"
    assert model_state.read(path) == record
    assert json.loads(path.read_text())["previous"] == "2.0.0"
    assert [p.name for p in path.parent.iterdir()] == ["model-state.json"]  # no temporary left


def test_missing_half_written_and_foreign_documents_read_as_none(tmp_path: Path) -> None:
    path = tmp_path / "model-state.json"
    assert model_state.read(path) is None
    path.write_text('{"state": "act')
    assert model_state.read(path) is None
    for doc in (
        [],
        {"state": "sleeping", "name": "d", "version": "1", "sha256": "", "reason": "", "ts": 1},
        {"state": "active", "name": "d", "version": 1, "sha256": "", "reason": "", "ts": 1},
    ):
        path.write_text(json.dumps(doc))
        assert model_state.read(path) is None, doc


def test_wait_ignores_a_stale_verdict_and_returns_a_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "model-state.json"
    now = model_state.now_ms()
    model_state.write(path, ModelState("active", "demo", "2.0.0", "", None, "", ts=now - 60_000))
    assert model_state.wait_for(path, "demo", "2.0.0", now, timeout_s=0.3) is None
    model_state.write(path, ModelState("active", "demo", "1.0.0", "", None, "", ts=now + 1))
    assert model_state.wait_for(path, "demo", "2.0.0", now, timeout_s=0.3) is None  # another version
    model_state.write(path, ModelState("active", "demo", "2.0.0", "", "1.0.0", "", ts=now + 2))
    verdict = model_state.wait_for(path, "demo", "2.0.0", now, timeout_s=5)
    assert verdict is not None and verdict.state == "active"


def test_a_refusal_answers_whatever_version_it_names(tmp_path: Path) -> None:
    """After a rollback the agent reports the version it went back to: still the verdict on ours."""
    path = tmp_path / "model-state.json"
    now = model_state.now_ms()
    model_state.write(path, ModelState("rolled_back", "demo", "1.0.0", "", "2.0.0", "NaN", ts=now))
    verdict = model_state.wait_for(path, "demo", "2.0.0", now, timeout_s=5)
    assert verdict is not None and verdict.state == "rolled_back" and verdict.reason == "NaN"
