"""The shipped example configs load with the real loaders and show every section of the schema."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agent.collector.config import CollectorConfig, load_collector_config
from agent.config import load_config
from agent.config.schema import AgentConfig
from tests.support.paths import REPO

AGENT_EXAMPLE = REPO / "deploy" / "example-config.yaml"
COLLECTOR_EXAMPLE = REPO / "deploy" / "collector-example.yaml"


def sections_in(path: Path) -> set[str]:
    """Top-level keys, set or commented out (``# web:``)."""
    return set(re.findall(r"^(?:# ?)?([a-z_]+):", path.read_text(), flags=re.MULTILINE))


def schema_sections(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def test_agent_example_loads() -> None:
    cfg = load_config(AGENT_EXAMPLE)
    assert cfg.device.id == "cam-01"
    assert cfg.model.path.endswith("/current")


def test_collector_example_loads_with_the_review_app() -> None:
    cfg = load_collector_config(COLLECTOR_EXAMPLE)
    assert cfg.web is not None
    assert str(cfg.root).startswith("/var/lib/inspection-agent/")  # the unit may write only there


@pytest.mark.parametrize(
    ("example", "schema"), [(AGENT_EXAMPLE, AgentConfig), (COLLECTOR_EXAMPLE, CollectorConfig)]
)
def test_every_top_level_section_is_in_the_example(example: Path, schema: type) -> None:
    missing = schema_sections(schema) - sections_in(example)
    assert not missing, f"{example.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("example", [AGENT_EXAMPLE, COLLECTOR_EXAMPLE])
def test_every_section_is_explained(example: Path) -> None:
    """Each paragraph that sets a top-level section carries a comment (above it or on its lines)."""
    bare = []
    for paragraph in example.read_text().split("\n\n"):
        keys = re.findall(r"^([a-z_]+):", paragraph, flags=re.MULTILINE)
        if keys and "#" not in paragraph:
            bare += keys
    assert not bare, f"{example.name}: sections without a comment: {bare}"
