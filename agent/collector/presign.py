"""Answers the devices' presigned-upload requests (``sampling.upload: presigned`` on the agent).

A request is the sample's metadata on ``{prefix}/{site}/{line}/{device}/upload``; the answer, on
the request's MQTT 5 response topic with its correlation data, is ``{"id", "url"}``: a PUT URL for
the key this collector derives from the validated metadata (the device never chooses a key), valid
``storage.s3.presign_expiry_s``. A storage that cannot presign (local files), a device that is not
allowed or metadata that does not validate get ``{"id", "error"}``, and the agent sends the sample
over MQTT instead. Runs on paho's network thread: presigning is a local HMAC, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes

from agent.collector.messages import Parser, Rejected
from agent.mqtt import new_properties

log = structlog.get_logger(__name__)

Publish = Callable[[str, bytes, Any], object]


class PresignResponder:
    def __init__(self, parser: Parser, storage: Any, expiry_s: int, publish: Publish) -> None:
        self._parser = parser
        self._presign: Callable[[str, int], str] | None = getattr(storage, "presign_put", None)
        self._expiry_s = expiry_s
        self._publish = publish
        self.counts = {"presigned": 0, "refused": 0}

    def handle(self, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None)
        if not response_topic:
            log.warning("upload_request_without_response_topic", topic=msg.topic)
            return
        answer = self._answer(msg.topic, bytes(msg.payload))
        reply = new_properties(PacketTypes.PUBLISH)
        corr = getattr(props, "CorrelationData", None)
        if corr is not None:
            reply.CorrelationData = corr
        self._publish(response_topic, json.dumps(answer).encode(), reply)

    def _answer(self, topic: str, payload: bytes) -> dict[str, Any]:
        try:
            sample_id, key = self._parser.upload_key(topic, payload)
        except Rejected as exc:
            self.counts["refused"] += 1
            return {"error": str(exc)}
        if self._presign is None:
            self.counts["refused"] += 1
            return {
                "id": sample_id,
                "error": "this collector's storage takes no direct uploads (backend local)",
            }
        self.counts["presigned"] += 1
        return {"id": sample_id, "url": self._presign(key, self._expiry_s)}
