"""Baselines for the end-to-end benchmark (``scripts/bench_e2e.py``), each run in its own process.

- ``naive-mqtt``: the loop a user would write against a real broker: read, preprocess, invoke,
  postprocess, build the payload and publish it with paho (the result at ``results_qos``, a
  defect again at ``qos``), one frame after the other, no outbox;
- ``core``: decode + preprocess + invoke alone, timed in wall *and* process CPU time, so the
  agent's per-frame overhead (payload, JSON, publish, outbox, observers, threads) is its CPU
  per frame minus this one; preprocess and invoke are also reported apart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.bench.variants import _model, _rate, _read, _replay_config
from agent.capture import open_source
from agent.config import AgentConfig
from agent.protocol.payloads import encode, result_payload
from agent.protocol.topics import Topics


def _client(cfg: AgentConfig) -> tuple[paho.Client, threading.Semaphore]:
    """A connected paho client and a semaphore bounding unacknowledged messages (paho's window)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"naive-{time.monotonic_ns()}")
    window = threading.Semaphore(100)
    client.on_publish = lambda *a: window.release()
    client.max_inflight_messages_set(100)
    client.connect(cfg.mqtt.host, cfg.mqtt.port)
    client.loop_start()
    return client, window


def naive_mqtt(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    model = _model(cfg)
    src = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    topics, mqtt = Topics.from_config(cfg), cfg.mqtt
    client, window = _client(cfg)
    cpu0, start = time.process_time(), time.perf_counter()
    for _ in range(frames):
        frame = _read(src)
        tensor, transform = model.preprocess(frame.image)
        result = model.postprocess(model.run(tensor), transform)
        age = (time.monotonic() - frame.mono) * 1000.0
        payload = result_payload(
            device=cfg.device,
            frame=frame,
            result=result,
            model=model.summary,
            latency=(0.0, 0.0, 0.0, 0.0, 0.0, age),
            budget_ms=50.0,
        )
        data = encode(payload)
        window.acquire()
        client.publish(topics.result, data, qos=mqtt.results_qos)
        if result.is_defect:
            window.acquire()
            client.publish(topics.defect, data, qos=mqtt.qos)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    client.loop_stop()
    client.disconnect()
    return _rate(frames, elapsed) | {"cpu_us_per_frame": cpu / frames * 1e6, "latency_ms": {}}


def core(cfg: AgentConfig, frames: int) -> dict[str, Any]:
    """Decode + preprocess + invoke, nothing else: wall rate, CPU per frame, and each part's mean."""
    model = _model(cfg)
    src = open_source(_replay_config(cfg).camera, cfg.base_dir)
    src.open()
    decode = pre = infer = 0.0
    cpu0, start = time.process_time(), time.perf_counter()
    for _ in range(frames):
        t0 = time.perf_counter()
        frame = _read(src)
        t1 = time.perf_counter()
        tensor, _ = model.preprocess(frame.image)
        t2 = time.perf_counter()
        model.run(tensor)
        t3 = time.perf_counter()
        decode, pre, infer = decode + t1 - t0, pre + t2 - t1, infer + t3 - t2
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    per = 1000.0 / frames
    return _rate(frames, elapsed) | {
        "cpu_us_per_frame": cpu / frames * 1e6,
        "decode_ms": decode * per,
        "preprocess_ms": pre * per,
        "invoke_ms": infer * per,
        "latency_ms": {},
    }


E2E = {"naive-mqtt": naive_mqtt, "core": core}
