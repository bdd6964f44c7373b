"""Every number a device may send has finite bounds, so no consumer (SQLite, datetime) can overflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from agent.protocol.schema import SCHEMA_NAMES, load_schema
from tests.unit.collector.samples import defect_event, jpeg, meta

INT64 = 2**63 - 1


def numeric_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "number" in kinds or "integer" in kinds:
            yield path, node
        for key, value in node.items():
            yield from numeric_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numeric_nodes(value, f"{path}/{i}")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_number_has_a_lower_and_an_upper_bound_within_64_bits(name: str) -> None:
    nodes = list(numeric_nodes(load_schema(name)))
    for path, node in nodes:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        assert low is not None and node.get("maximum") is not None, f"{name}{path} is unbounded"
        assert -INT64 - 1 <= low <= node["maximum"] <= INT64, f"{name}{path}"


@pytest.mark.parametrize(("name", "doc"), [("sample", meta(jpeg())), ("defect", defect_event())])
@pytest.mark.parametrize(
    ("field", "value"), [("ts", 10**20), ("ts", -1), ("frame", 2**63), ("frame", -(2**70))]
)
def test_out_of_range_timestamps_and_frame_counters_are_refused(
    name: str, doc: dict[str, Any], field: str, value: int
) -> None:
    validator = jsonschema.Draft202012Validator(load_schema(name))
    validator.validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**doc, field: value})
