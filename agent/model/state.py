"""``{state.dir}/model-state.json``: the agent's verdict on the model it was asked to run.

The running agent writes it after every start, reload and rollback; ``inspection-agent store
activate`` on the same device reads it to learn whether a freshly switched model was accepted.
Both sides go through this module, so the file's name, keys and states are defined once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from agent import fsutil
from agent.events import ModelState as ModelStateDoc

FILENAME = "model-state.json"

State = Literal["active", "failed", "rolled_back"]
STATES: tuple[State, ...] = get_args(State)
REFUSED: frozenset[State] = frozenset({"failed", "rolled_back"})  # the new model is not running


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class ModelState:
    """One verdict: ``active`` (running it), ``failed`` (refused at load), ``rolled_back``
    (swapped in, misbehaved, replaced by ``name``/``version`` again)."""

    state: State
    name: str
    version: str
    sha256: str
    previous: str | None
    reason: str
    ts: int = field(default_factory=now_ms)  # ms since the epoch; tells an old verdict from a new one

    def as_dict(self) -> ModelStateDoc:
        """The JSON document (also the details of the ``model_swap`` event)."""
        return ModelStateDoc(
            state=self.state,
            name=self.name,
            version=self.version,
            sha256=self.sha256,
            previous=self.previous,
            reason=self.reason,
            ts=self.ts,
        )

    def answers(self, name: str, version: str, since_ms: int) -> bool:
        """Whether this is the agent's verdict on switching to ``name`` ``version`` at ``since_ms``."""
        if self.ts < since_ms:
            return False
        return self.state in REFUSED or (self.name, self.version) == (name, version)


def path_in(state_dir: Path) -> Path:
    return state_dir / FILENAME


def write(path: Path, record: ModelState) -> None:
    """Durably (write, fsync, rename, fsync the directory): a reader sees the old or the new verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, json.dumps(record.as_dict(), indent=2))


def read(path: Path) -> ModelState | None:
    """The last verdict, or None while there is none or it cannot be understood."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return from_dict(doc)


def from_dict(doc: object) -> ModelState | None:
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        return None
    text = {k: doc.get(k) for k in ("name", "version", "sha256", "reason")}
    if not all(isinstance(v, str) for v in text.values()) or not isinstance(doc.get("ts"), int):
        return None
    previous = doc.get("previous")
    return ModelState(
        state=doc["state"],
        name=str(text["name"]),
        version=str(text["version"]),
        sha256=str(text["sha256"]),
        previous=str(previous) if previous is not None else None,
        reason=str(text["reason"]),
        ts=int(doc["ts"]),
    )


def wait_for(path: Path, name: str, version: str, since_ms: int, timeout_s: float) -> ModelState | None:
    """Poll until the agent gives its verdict on ``name`` ``version``; None when it stays silent."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = read(path)
        if record is not None and record.answers(name, version, since_ms):
            return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
