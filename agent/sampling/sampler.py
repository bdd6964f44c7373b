"""The edge sampler: picks unsure frames on the publish thread, encodes and sends them on its own.

``observe()`` runs on the pipeline's publish thread after every frame, so the common case (no
policy fires) is a few comparisons on the raw scores. Only when a policy fires are the quotas
checked and the frame hashed for near-duplicates; the JPEG encoding and the publish happen on
a worker thread behind a bounded queue (a full queue drops the sample and counts it).
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import structlog

from agent.capture.base import Frame
from agent.config.observers import SamplingConfig
from agent.config.schema import DeviceConfig
from agent.errors import AgentError
from agent.model.result import InferenceResult
from agent.observer import FrameObserver
from agent.protocol.ids import new_id
from agent.protocol.payloads import ResultPayload, detection_dicts
from agent.protocol.upload import FALLBACK, PRESIGNED, UPLOAD_PROPERTY
from agent.protocol.wire import CONTENT_TYPE, META_PROPERTY, frame
from agent.publish import Priority, Sink
from agent.sampling.dedup import DuplicateFilter, dhash
from agent.sampling.jpeg import fit_jpeg
from agent.sampling.policies import SNAPSHOT, Policy, build_policies
from agent.sampling.quota import Clock, Quota

log = structlog.get_logger(__name__)

_OVERHEAD = 256  # fixed header, property ids, topic length and the image fields added to the metadata


class Uploader(Protocol):
    def upload(self, meta: dict[str, Any], data: bytes) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Wire:
    """Where and how samples are published, settled once at start."""

    topic: str
    qos: int
    max_packet_bytes: int
    mqtt5: bool


@dataclass(slots=True)
class _Job:
    image: np.ndarray
    meta: dict[str, Any]


class Sampler(FrameObserver):
    """A frame observer that sends chosen frames on ``.../sample``."""

    name = "sampler"

    def __init__(
        self,
        cfg: SamplingConfig,
        *,
        sink: Sink,
        wire: Wire,
        device: DeviceConfig,
        log_path: Path | None = None,
        clock: Clock = time.monotonic,
        uploader: Uploader | None = None,
    ) -> None:
        self.cfg = cfg
        self._uploader = uploader  # sampling.upload: presigned (agent/sampling/presigned.py)
        self.enabled = cfg.enabled
        self._sink = sink
        self._wire = wire
        self._device = device
        self._clock = clock
        self._rng = random.Random(cfg.seed)
        self.policies: dict[str, Policy] = build_policies(cfg, clock, self._rng)
        self.quota = Quota(cfg.quota, clock)
        self._dedup = DuplicateFilter(cfg.dedup)
        self._drift = False
        self._snapshots: list[Future[str]] = []
        self._snap_lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue(cfg.queue_size)
        self.sent_ids: deque[str] = deque(maxlen=cfg.log_size)
        self._log_path = log_path
        self._log_file: IO[str] | None = None
        self.counts: Counter[str] = Counter()  # publish thread only
        self.worker_counts: Counter[str] = Counter()  # worker thread only
        self._worker = threading.Thread(target=self._work, name="sampler", daemon=True)
        self._worker.start()

    # -- the publish thread -----------------------------------------------------------
    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        """Decide about one frame; never blocks."""
        if self._snapshots:
            self._snapshot(frame, result, payload)
            return
        if not self.enabled:
            return
        drift = self._drift
        reasons = [p.name for p in self.policies.values() if p.config.enabled and p.matches(result, drift)]
        if reasons:
            self._consider(frame, result, payload, reasons)

    def offer(self, reason: str, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        """Another observer picked this frame for the ``reason`` policy (the shadow: the two models
        disagree); publish thread, like observe. The policy's switch, rate and quotas still apply."""
        policy = self.policies.get(reason)
        if self.enabled and policy is not None and policy.config.enabled and policy.draw():
            self._consider(frame, result, payload, [reason])

    def _consider(
        self, frame: Frame, result: InferenceResult, payload: ResultPayload, reasons: list[str]
    ) -> None:
        """A policy fired: quotas, then near-duplicates, then the queue."""
        for name in reasons:
            self.policies[name].fired += 1
        allowed = [name for name in reasons if self.policies[name].quota.available()]
        if not allowed or not self.quota.available():
            self.counts["suppressed_quota"] += 1
            return
        if self._dedup.is_duplicate(dhash(frame.image), self._clock()):
            self.counts["suppressed_duplicate"] += 1
            return
        for name in allowed:
            self.policies[name].quota.take()
        self.quota.take()
        self._enqueue(frame, result, payload, allowed)

    def _snapshot(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        with self._snap_lock:
            waiting, self._snapshots = self._snapshots, []
        if not waiting:  # every waiter withdrew meanwhile
            return
        sample_id = self._enqueue(frame, result, payload, [SNAPSHOT])
        for future in waiting:
            if future.done():  # never expected (waiters withdraw, they do not cancel); never fatal
                continue
            if sample_id is None:
                future.set_exception(AgentError("the sample queue is full; try again"))
            else:
                future.set_result(sample_id)

    def _enqueue(
        self, frame: Frame, result: InferenceResult, payload: ResultPayload, reasons: list[str]
    ) -> str | None:
        meta = self._meta(frame, result, payload, reasons)
        try:
            # A copy: a capture source may reuse its buffer for the next frame.
            self._queue.put_nowait(_Job(frame.image.copy(), meta))
        except queue.Full:
            self.counts["dropped_queue_full"] += 1
            return None
        self.counts["sampled"] += 1
        for name in reasons:
            self.counts[f"policy_{name}"] += 1
        return str(meta["id"])

    def _meta(
        self, frame: Frame, result: InferenceResult, payload: ResultPayload, reasons: list[str]
    ) -> dict[str, Any]:
        model = payload.get("model", {})
        meta: dict[str, Any] = {
            "id": new_id(frame.ts_ms),
            "result_id": payload.get("id"),
            "ts": frame.ts_ms,
            "device": self._device.id,
            "site": self._device.site,
            "line": self._device.line,
            "frame": frame.seq,
            "model": {"name": model.get("name", "unknown"), "version": model.get("version", "unknown")},
            "label": result.label,
            "score": round(result.score, 4),
            "scores": {k: round(v, 4) for k, v in result.scores.items()},
            "defect": result.is_defect,
            "reasons": reasons,
            "latency_ms": payload.get("latency_ms", {}),
        }
        if frame.ref is not None:
            meta["ref"] = frame.ref
        # The model's guess travels with the frame, so reviewers and labeling tools start from it.
        if result.detections:
            meta["detections"] = detection_dicts(result.detections)
        if result.anomaly_score is not None:
            meta["anomaly_score"] = round(result.anomaly_score, 4)
        return meta

    # -- controls (command worker thread) -----------------------------------------------
    def set_drift(self, active: bool) -> None:
        """The drift monitor turns the boosted ``drift`` policy on and off."""
        self._drift = active

    def request_snapshot(self) -> Future[str]:
        """The next frame is sampled whatever the policies say; the future gets its id."""
        future: Future[str] = Future()
        with self._snap_lock:
            self._snapshots.append(future)
        return future

    def withdraw_snapshot(self, future: Future[str]) -> bool:
        """The waiter gave up: forget its request. False when a frame already took it (the
        future then has its outcome, or gets it at once)."""
        with self._snap_lock:
            if future in self._snapshots:
                self._snapshots.remove(future)
                return True
        return False

    # -- the worker ---------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._send(job)
            except AgentError as exc:  # PublishError: the outbox refused it; the line goes on
                self.worker_counts["dropped_publish_failed"] += 1
                log.warning("sample_not_sent", id=job.meta["id"], error=str(exc))
            except Exception:  # a bug here must not stop sampling for the rest of the run
                self.worker_counts["dropped_error"] += 1
                log.exception("sample_failed", id=job.meta["id"])
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _send(self, job: _Job) -> None:
        tried = self._uploader is not None
        if self._uploader is not None and self._send_presigned(job, self._uploader):
            return
        wire, meta = self._wire, job.meta
        h, w = job.image.shape[:2]
        base = len(json.dumps(meta, separators=(",", ":")).encode())
        budget = wire.max_packet_bytes - base - len(wire.topic) - _OVERHEAD
        jpeg = fit_jpeg(job.image, self.cfg.jpeg_quality, self.cfg.max_side, budget)
        if jpeg is None:
            self.worker_counts["dropped_too_large"] += 1
            log.warning("sample_too_large", id=meta["id"], limit=wire.max_packet_bytes)
            return
        meta["image"] = {
            "width": jpeg.width,
            "height": jpeg.height,
            "bytes": len(jpeg.data),
            "quality": jpeg.quality,
            "original_width": w,
            "original_height": h,
        }
        text = json.dumps(meta, separators=(",", ":"), allow_nan=False)
        if wire.mqtt5:
            self._sink.publish(
                wire.topic,
                jpeg.data,
                qos=wire.qos,
                priority=Priority.SAMPLE,
                content_type=CONTENT_TYPE,
                # after a failed presigned upload: its PUT may have landed unnoticed (protocol/upload.py)
                user_properties=[(META_PROPERTY, text), *([(UPLOAD_PROPERTY, FALLBACK)] if tried else [])],
            )
        else:
            self._sink.publish(
                wire.topic, frame(text.encode(), jpeg.data), qos=wire.qos, priority=Priority.SAMPLE
            )
        self._record(meta)

    def _send_presigned(self, job: _Job, uploader: Uploader) -> bool:
        """Full resolution to the object store, metadata over MQTT; False: send it the usual way."""
        h, w = job.image.shape[:2]
        jpeg = fit_jpeg(job.image, self.cfg.jpeg_quality, max(h, w), 1 << 30)
        if jpeg is None:
            return False
        meta = dict(job.meta)
        meta["image"] = {"width": jpeg.width, "height": jpeg.height, "bytes": len(jpeg.data),
                         "quality": jpeg.quality, "original_width": w, "original_height": h}  # fmt: skip
        if not uploader.upload(meta, jpeg.data):
            self.worker_counts["upload_fallback"] += 1
            return False
        text = json.dumps(meta, separators=(",", ":"), allow_nan=False)
        self._sink.publish(
            self._wire.topic, b"", qos=self._wire.qos, priority=Priority.SAMPLE, content_type=CONTENT_TYPE,
            user_properties=[(META_PROPERTY, text), (UPLOAD_PROPERTY, PRESIGNED)],
        )  # fmt: skip
        self.worker_counts["uploaded"] += 1
        self._record(meta)
        return True

    def _record(self, meta: dict[str, Any]) -> None:
        self.worker_counts["sent"] += 1
        self.sent_ids.append(meta["id"])
        if self._log_path is None:
            return
        if self._log_file is None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("a", encoding="utf-8")
        line = {k: meta[k] for k in ("id", "ts", "frame", "label", "reasons")}
        self._log_file.write(json.dumps(line) + "\n")
        self._log_file.flush()

    # -- lifecycle and health -----------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued sample was handed to the sink; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the worker. Idempotent."""
        if not self._worker.is_alive():
            return
        self.flush(timeout)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("sampler_still_busy_at_shutdown", pending=self._queue.qsize())
            return
        self._worker.join(timeout)
        if self._uploader is not None:
            self._uploader.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def health(self) -> dict[str, Any]:
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """For health: what fired, what was sent, what was suppressed or dropped, and why."""
        c, w = self.counts, self.worker_counts
        return {
            "enabled": self.enabled,
            "drift": self._drift,
            "fired": {name: p.fired for name, p in self.policies.items()},
            "sampled": c["sampled"],
            "by_policy": {k[len("policy_") :]: v for k, v in c.items() if k.startswith("policy_")},
            "sent": w["sent"],
            "suppressed": {"duplicate": c["suppressed_duplicate"], "quota": c["suppressed_quota"]},
            "dropped": {
                "queue_full": c["dropped_queue_full"],
                "too_large": w["dropped_too_large"],
                "publish_failed": w["dropped_publish_failed"],
                "error": w["dropped_error"],
            },
            "queued": self._queue.qsize(),
            "upload": {"presigned": w["uploaded"], "fallback": w["upload_fallback"]},
        }
