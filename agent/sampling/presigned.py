"""Full-resolution samples straight to the object store (``sampling.upload: presigned``).

For each sample the agent asks the collectors (MQTT 5 request/response on ``…/upload``) for a
presigned PUT URL, uploads the JPEG over HTTP(S), and then sends only the metadata over MQTT.
Any failure (no collector answers in time, the collector's storage cannot presign, the PUT fails)
returns False and the sampler sends the sample the usual way, through the outbox: a sample is never
lost. It is never stored twice either: the collector keys objects by sample id, so a PUT that
succeeded unnoticed is overwritten by the fallback's image under the same key, with one row: the
fallback carries ``upload: fallback`` so that the collector knows to (agent/protocol/upload.py).

Its own small MQTT client (from the shared factory) carries the requests: the outbox's publisher
only publishes, and a request must not wait behind queued results.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes

from agent.mqtt import ClientSpec, new_client, new_properties
from agent.protocol.upload import REQUEST_KIND, RESPONSE_KIND, sibling_topic

log = structlog.get_logger(__name__)


class PresignedUploader:
    """Request a URL, PUT the JPEG; ``upload()`` is called from the sampler's worker thread."""

    def __init__(self, spec: ClientSpec, host: str, port: int, sample_topic: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.request_topic = sibling_topic(sample_topic, REQUEST_KIND)
        self.response_topic = sibling_topic(sample_topic, RESPONSE_KIND)
        self._pending: dict[bytes, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = new_client(spec)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_disconnect = lambda *_: self._subscribed.clear()
        self._client.on_message = self._on_message
        self._client.connect_async(host, port, 30)
        self._client.loop_start()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.response_topic, qos=0)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None)
        with self._lock:
            future = self._pending.pop(bytes(corr), None) if corr else None
        if future is not None:
            try:
                future.set_result(json.loads(msg.payload))
            except ValueError:
                future.set_result({"error": "the collector's answer is not JSON"})

    def upload(self, meta: dict[str, Any], data: bytes) -> bool:
        """True once the object store has the JPEG; False (logged) when the MQTT path must carry it."""
        if not self._subscribed.wait(min(self.timeout_s, 2.0)):
            return self._fail(meta, "not connected to the broker")
        answer = self._ask(meta)
        if "url" not in answer:
            return self._fail(meta, str(answer.get("error", "no presigned URL")))
        request = urllib.request.Request(
            answer["url"], data=data, method="PUT", headers={"Content-Type": "image/jpeg"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return self._fail(meta, f"upload failed: {exc}")
        if status // 100 != 2:
            return self._fail(meta, f"upload answered HTTP {status}")
        return True

    def _ask(self, meta: dict[str, Any]) -> dict[str, Any]:
        corr = meta["id"].encode()
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[corr] = future
        props = new_properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.response_topic
        props.CorrelationData = corr
        self._client.publish(
            self.request_topic, json.dumps(meta, separators=(",", ":")), qos=1, properties=props
        )
        try:
            return future.result(self.timeout_s)
        except FutureTimeout:
            return {"error": f"no collector answered within {self.timeout_s:g} s"}
        finally:
            with self._lock:
                self._pending.pop(corr, None)

    @staticmethod
    def _fail(meta: dict[str, Any], why: str) -> bool:
        log.warning("sample_upload_fallback", id=meta["id"], reason=why)
        return False

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
