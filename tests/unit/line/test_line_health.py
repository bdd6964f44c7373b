"""The health report's ``line_io`` section: the line's counters as a PLC engineer needs them, valid
against the health schema, and the MQTT/console trigger going through the same counted queue."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.config import load_config
from agent.errors import CommandError
from agent.line.chip import MemoryChip
from agent.line.service import Hooks, Line
from agent.protocol.payloads import ResultPayload, TriggerTag
from agent.protocol.schema import load_schema
from agent.protocol.topics import Topics
from agent.testing import RecordingSink
from tests.support.agentproc import write_config

TRIGGER, REJECT, READY, FAULT = 17, 27, 22, 23


class Inspection:
    """The pipeline's trigger hook: a result per trigger after ``infer_s``, every third a defect."""

    def __init__(self, infer_s: float = 0.02) -> None:
        self.infer_s = infer_s
        self.tags: list[TriggerTag] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, timeout: float, edge: float, settle_s: float, tag: TriggerTag) -> ResultPayload:
        self.release.wait(timeout)
        time.sleep(self.infer_s)
        self.tags.append(tag)
        defect = tag["seq"] % 3 == 0
        return {"label": "scratch" if defect else "ok", "defect": defect, "trigger": tag}  # type: ignore[typeddict-item]


def _line(tmp_path: Path, inspection: Inspection, chip: MemoryChip, **sections: Any) -> Line:
    cfg = load_config(
        write_config(
            tmp_path, port=1883, prefix="p", source="synthetic:1", camera={"mode": "trigger"}, **sections
        )
    )
    hooks = Hooks(trigger=inspection, agent_state=lambda: "running", labels=lambda: ["ok", "scratch"],
                  model_version=lambda: "1.0")  # fmt: skip
    return Line(cfg, hooks, sink=RecordingSink(), topics=Topics.from_config(cfg), emit=RecordingSink(),
                chips=lambda _name: chip)  # fmt: skip


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Line, MemoryChip, Inspection]]:
    chip, inspection = MemoryChip(), Inspection()
    io = {
        "trigger": {"line": TRIGGER, "debounce_ms": 5},
        "reject": {"line": REJECT, "delay_ms": 150, "pulse_ms": 20},
        "ready": {"line": READY},
        "fault": {"line": FAULT},
    }
    line = _line(tmp_path, inspection, chip, io=io, modbus={"listen": "127.0.0.1:0"})
    line.start()
    yield line, chip, inspection
    line.stop()


def _validate(section: dict[str, Any]) -> None:
    schema = load_schema("health")
    sub = {"$defs": schema["$defs"], **schema["properties"]["line_io"]}
    jsonschema.Draft202012Validator(sub).validate(section)


def test_the_line_io_section_counts_triggers_rejects_jitter_and_clients(wired) -> None:  # type: ignore[no-untyped-def]
    line, chip, _inspection = wired
    _validate(line.health())  # before anything happened: zeros and nulls, still valid
    for _part in range(6):  # a part every 100 ms, the first edge of each chattering once
        t0 = time.monotonic()
        chip.drive(TRIGGER, True, t0)
        chip.drive(TRIGGER, False, t0 + 0.001)
        chip.drive(TRIGGER, True, t0 + 0.002)
        chip.drive(TRIGGER, False, t0 + 0.003)
        time.sleep(0.1)
    time.sleep(0.4)

    modbus = line.parts[0]
    with socket.create_connection(("127.0.0.1", modbus.port)):  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while modbus.clients() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        section = line.health()
    _validate(section)
    assert section["triggers"] == {"received": 6, "missed": 0, "overlapped": 0, "failed": 0, "bounced": 6}
    # seq 3 and 6 are defects: fired, or late if this loaded machine held the worker past the window
    rejects = section["rejects"]
    assert rejects["fired"] + rejects["late"] == 2 and rejects["fired"] >= 1
    assert section["jitter_ms"]["count"] == rejects["fired"] and section["jitter_ms"]["p50_ms"] >= 0
    assert section["clients"] == {"modbus": 1}
    assert (section["state"], section["ready"], section["fault"]) == ("running", True, False)


def test_a_command_trigger_goes_through_the_queue_and_is_tagged(tmp_path: Path) -> None:
    inspection = Inspection()
    line = _line(tmp_path, inspection, MemoryChip())  # trigger mode alone: the queue, no part
    line.start()
    try:
        first = line.command(5.0, "mqtt")
        assert first["trigger"]["source"] == "mqtt" and first["trigger"]["seq"] == 1
        inspection.release.clear()  # the next inspection hangs: one in flight, two waiting, then refused
        waiting = [threading.Thread(target=lambda: line.command(5.0)) for _ in range(3)]
        for t in waiting:
            t.start()
            time.sleep(0.05)
        with pytest.raises(CommandError, match="trigger refused"):
            line.command(5.0)
        inspection.release.set()
        for t in waiting:
            t.join(5)
        section = line.health()
    finally:
        line.stop()
    assert section["triggers"]["received"] == 5 and section["triggers"]["missed"] == 1
    # the 2nd found the worker idle; the 3rd and 4th waited behind it, the refused 5th overlapped too
    assert section["triggers"]["overlapped"] == 3 and section["clients"] == {}
    assert (section["ready"], section["fault"]) == (None, None)  # no io: nothing wired
    assert [t["source"] for t in inspection.tags] == ["mqtt"] * 4
