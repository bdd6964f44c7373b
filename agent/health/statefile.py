"""``{state.dir}/health.json``: the latest health report, for a technician on the device.

Written atomically (temporary file + rename) so a reader never sees half a report;
not fsynced, because it is rewritten every interval and an SD card wears out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent import fsutil
from agent.errors import AgentError

FILENAME = "health.json"


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` with ``doc`` as JSON; raise AgentError when the directory is unusable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(path, json.dumps(doc, indent=1, allow_nan=False), durable=False)
    except OSError as exc:
        raise AgentError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read(path: Path) -> dict[str, Any] | None:
    """The last report, or None when there is none; AgentError when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AgentError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AgentError(f"{path} is not a health report (invalid JSON: {exc})") from exc
    if not isinstance(doc, dict):
        raise AgentError(f"{path} is not a health report (not a JSON object)")
    return doc
