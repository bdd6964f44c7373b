"""The payloads the agent builds validate against the published schemas.

Events are taken from the real parts that raise them (overrun monitor, model slot,
supervisor, observer boundary), recorded by :class:`agent.testing.RecordingSink`, and put
on the wire by the same ``event_payload`` the agent uses: a part that raised a malformed
event would fail here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np

from agent import events
from agent.capture.base import Frame
from agent.config.observers import ShadowConfig
from agent.config.schema import DeviceConfig
from agent.events import Event, EventKind, Severity
from agent.model.loaded import load_model
from agent.model.result import Detection, InferenceResult
from agent.observer import FrameObserver
from agent.pipeline.observers import Observers
from agent.protocol.payloads import encode, event_payload, result_payload
from agent.protocol.schema import load_schema
from agent.shadow.runner import ShadowRunner
from agent.testing import RecordingSink
from tests.unit.pipeline.conftest import Harness, frames_dir, slow_package

DEVICE = DeviceConfig(id="cam-01", site="plant-a", line="line-3")
Build = Callable[..., Harness]


def schema(name: str) -> dict[str, object]:
    return load_schema(name)


def test_result_with_detections_and_anomaly_validates() -> None:
    frame = Frame(np.zeros((4, 4, 3), np.uint8), 7, int(time.time() * 1000), time.monotonic(), ref="a.png")
    result = InferenceResult(
        label="scratch", score=0.9, scores={"ok": 0.1, "scratch": 0.9}, is_defect=True,
        detections=(Detection("scratch", 0.9, (0.1, 0.2, 0.3, 0.4)),), anomaly_score=0.7,
    )  # fmt: skip
    payload = result_payload(
        device=DEVICE, frame=frame, result=result,
        model={"name": "m", "version": "1", "sha256": "ab" * 32, "runtime": "onnx"},
        latency=(1.0, 0.5, 2.0, 3.0, 0.2, 7.0), budget_ms=5.0,
    )  # fmt: skip
    jsonschema.validate(payload, schema("result"))
    jsonschema.validate(payload, schema("defect"))
    assert payload["over_budget"] is True and payload["ref"] == "a.png"


class _Broken(FrameObserver):
    name = "broken"

    def tick(self) -> None:
        raise RuntimeError("bug")


def _raise_every_kind(h: Harness, tmp_path: Path) -> list[Event]:
    """Drive each real part into raising its events; return what the recording sink got."""
    overrun, window = h.pipeline.overrun, h.cfg.inference.overrun_window
    for over in [True] * window + [False] * window:
        overrun.observe(over)  # engages, then releases
    refused = h.slot.request(str(tmp_path / "no-such-package")).result(30)
    assert refused["state"] == "failed"
    h.pipeline.infer_started = time.monotonic() - 60.0  # an inference call that never returned
    h.supervisor.tick()  # stuck: reported, the stage restarted
    observers = Observers([_Broken()], emit=h.sink, max_failures=2)
    observers.tick()
    observers.tick()
    shadow = ShadowRunner(
        ShadowConfig(),
        path=tmp_path / "no-such-shadow",
        load=lambda path: load_model(path, h.cfg.model),
        busy=lambda: False,
        budget_ms=lambda: 50.0,
        publish=lambda doc: None,
        emit=h.sink,
    )
    shadow.close(10)  # it failed to load: one shadow event
    return list(h.sink.events)


def test_every_event_the_parts_raise_validates_on_the_wire(build: Build, tmp_path: Path) -> None:
    h = build(f"dir:{frames_dir(tmp_path / 'frames', 2)}", slow_package(tmp_path / "pkg", 1))
    # The composition root raises camera events with the same constructor (Agent._on_camera).
    # So do the publisher (outbox_disk, through Publisher's emit) and the replay skips (Agent.skips).
    raised = [
        *_raise_every_kind(h, tmp_path),
        events.camera("offline"),
        events.camera("online"),
        events.outbox_disk(
            True, "outbox o.db: the disk is full", {"sample": 0, "result": 3, "event": 0, "defect": 1}
        ),
        events.outbox_disk(
            False, "the outbox has room again", {"sample": 0, "result": 3, "event": 0, "defect": 1}
        ),
        events.image_skipped("dir:/data", "a.png", "empty file", 1),
        events.line_fault("reject_late", "the result of trigger 7 came after its reject window", 7),
    ]
    for event in raised:
        wire = json.loads(encode(event_payload(DEVICE, event)))  # what Agent.emit publishes
        jsonschema.validate(wire, schema("event"))
        assert wire["type"] == event.kind.value and wire["details"] == event.details_dict()
    assert {e.kind for e in raised} == set(EventKind)  # a new kind must be raised here too
    assert {e.severity for e in raised if e.kind is EventKind.MODEL_SWAP} == {Severity.ERROR}


def test_the_wire_keeps_its_shape() -> None:
    """The JSON consumers parse did not change with the typed events (docs/mqtt.md)."""
    sink = RecordingSink()
    observers = Observers([_Broken()], emit=sink, max_failures=1)
    observers.tick()
    (event,) = sink.events
    wire = event_payload(DEVICE, event)
    assert list(wire) == ["id", "ts", "device", "site", "line", "type", "severity", "message", "details"]
    assert wire["type"] == "observer_disabled" and wire["severity"] == "error"
    assert wire["details"] == {"observer": "broken", "failures": 1, "error": "RuntimeError: bug"}
