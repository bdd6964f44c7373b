"""The JSON Schemas are valid, and what the code and docs/mqtt.md produce conforms to them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.config.schema import MqttConfig, OutboxConfig
from agent.protocol.schema import load_schema
from agent.protocol.topics import Topics
from agent.publish import CommandRouter, Publisher
from tests.support.paths import REPO


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def doc_examples(kind: str) -> list[Any]:
    text = (REPO / "docs" / "mqtt.md").read_text()
    return [json.loads(block) for block in re.findall(rf"```json {kind}\n(.*?)```", text, re.S)]


@pytest.mark.parametrize("kind", ["status", "event", "command-reply"])
def test_documented_examples_validate(kind: str) -> None:
    examples = doc_examples(kind)
    assert examples
    for example in examples:
        validator(kind).validate(example)


def test_router_replies_validate() -> None:
    router = CommandRouter()
    v = validator("command-reply")
    v.validate(router.handle("ping", b"{}"))
    v.validate(router.handle("ping", b"not json"))
    v.validate(router.handle("nope", b"{}"))


def test_status_payloads_validate(tmp_path: Path) -> None:
    pub = Publisher(
        MqttConfig(),
        OutboxConfig(path="o.db"),
        topics=Topics("p", "s", "l", "d"),
        client_id="c",
        password=None,
        base_dir=tmp_path,
        status_payload=lambda: {"agent_version": "0.1.0", "model": {"name": "m", "version": "1"}},
    )
    v = validator("status")
    v.validate(json.loads(pub._status_json("online")))
    v.validate(json.loads(pub._status_json("offline", "stopped")))


def test_an_event_without_its_type_is_invalid() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator("event").validate({"id": "x", "ts": 1, "device": "d", "severity": "info", "message": "m"})
