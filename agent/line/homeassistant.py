"""Home Assistant MQTT discovery: retained config documents that make the device appear in Home
Assistant by itself, reading the topics the agent already publishes (result, health, status).

Documents go through the agent's outbox (retained, QoS 1), so they reach the broker after an
outage too. Topic: ``{discovery_prefix}/{component}/{node_id}/{object_id}/config``.
"""

from __future__ import annotations

import json
from typing import Any

from agent.config.schema import AgentConfig
from agent.protocol.topics import Topics
from agent.publish import Priority, Sink

# (component, object id, name, topic kind, value template, extra fields)
ENTITIES: tuple[tuple[str, str, str, str, str, dict[str, Any]], ...] = (
    ("sensor", "last_label", "Last result", "result", "{{ value_json.label }}", {}),
    (
        "sensor",
        "last_score",
        "Last score",
        "result",
        "{{ value_json.score }}",
        {"state_class": "measurement"},
    ),
    (
        "sensor",
        "latency",
        "Inspection latency",
        "result",
        "{{ value_json.latency_ms.total }}",
        {"unit_of_measurement": "ms", "state_class": "measurement"},
    ),
    (
        "binary_sensor",
        "defect",
        "Defect",
        "result",
        "{{ 'ON' if value_json.defect else 'OFF' }}",
        {"device_class": "problem"},
    ),
    (
        "sensor",
        "parts",
        "Parts inspected",
        "health",
        "{{ value_json.counters.inspected }}",
        {"state_class": "total_increasing"},
    ),
    (
        "sensor",
        "defects",
        "Defects",
        "health",
        "{{ value_json.counters.defects }}",
        {"state_class": "total_increasing"},
    ),
    ("sensor", "state", "Agent state", "health", "{{ value_json.state }}", {}),
)


def documents(cfg: AgentConfig, topics: Topics) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config document, one per entity."""
    prefix = cfg.homeassistant.discovery_prefix
    node = topics.root.replace("/", "_")
    device = {
        "identifiers": [node],
        "name": f"Inspection {cfg.device.id}",
        "manufacturer": "inspection-agent",
        "model": "edge inspection agent",
        "suggested_area": cfg.device.area or cfg.device.line,
    }
    docs: dict[str, dict[str, Any]] = {}
    for component, object_id, name, kind, template, extra in ENTITIES:
        docs[f"{prefix}/{component}/{node}/{object_id}/config"] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "object_id": f"{cfg.device.id}_{object_id}",
            "state_topic": getattr(topics, kind),
            "value_template": template,
            "availability_topic": topics.status,
            "availability_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            **extra,
        }
    return docs


class Discovery:
    name = "homeassistant"

    def __init__(self, cfg: AgentConfig, *, sink: Sink, topics: Topics) -> None:
        self._docs = documents(cfg, topics)
        self._sink = sink

    def start(self) -> None:
        for topic, doc in self._docs.items():
            data = json.dumps(doc, separators=(",", ":")).encode()
            self._sink.publish(topic, data, qos=1, priority=Priority.EVENT, retain=True)

    def clients(self) -> int:
        """Discovery only publishes on the agent's own session: no clients of its own."""
        return 0

    def stop(self) -> None:
        """The documents stay: the device is still there, only offline (its status says so)."""
