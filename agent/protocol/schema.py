"""The published JSON Schemas (``agent/protocol/schemas/*.schema.json``), read from the package.

One loader for the collector, the tests and anyone else validating what a device sends, so the
files can move without a dozen ``Path(...)/"schemas"`` joins going stale.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_NAMES = ("command-reply", "defect", "drift", "event", "health", "result", "sample", "status")


def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (one of :data:`SCHEMA_NAMES`); ValueError for an unknown name."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"no schema {name!r}; the schemas are {', '.join(SCHEMA_NAMES)}")
    text = resources.files(__package__).joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc
