"""Trigger -> reject timing through the chip interface, with a simulated conveyor.

Parts pass the photo-eye every 200 ms; the reject gate sits 350 ms downstream. The inspection is a
stand-in that takes a set time per part (the part's own 'inference time'), so a slow result is a
real late result for the timing code: it must not fire, must be counted and must raise an event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.config.line import IoConfig, OutputLineConfig, RejectConfig, TriggerInputConfig
from agent.events import EventKind
from agent.line.chip import MemoryChip
from agent.line.io import LineIO
from agent.line.state import LineState
from agent.line.trigger import Triggers, TriggerStamp
from agent.protocol.payloads import ResultPayload
from agent.testing import RecordingSink

TRIGGER, REJECT, READY, FAULT = 17, 27, 22, 23
PERIOD_S, DELAY_S, PULSE_S = 0.200, 0.350, 0.080
TOLERANCE_S = 0.030  # scheduling tolerance on a loaded 2-core test machine (jitter is reported separately)


@dataclass
class Part:
    defect: bool
    infer_s: float = 0.02


class Conveyor:
    """Parts in order; the inspection answers for the part whose trigger it got."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self.edges: dict[int, float] = {}

    def inspect(self, stamp: TriggerStamp) -> ResultPayload:
        part = self.parts[stamp.seq - 1]
        self.edges[stamp.seq] = stamp.mono
        time.sleep(max(0.0, stamp.mono + part.infer_s - time.monotonic()))
        label = "defect" if part.defect else "ok"
        return {"label": label, "defect": part.defect}  # type: ignore[typeddict-item]

    def run(self, chip: MemoryChip) -> None:
        start = time.monotonic()
        for i in range(len(self.parts)):
            time.sleep(max(0.0, start + i * PERIOD_S - time.monotonic()))
            chip.pulse(TRIGGER, 0.01)


def _io(chip: MemoryChip, events: RecordingSink, state: LineState, **reject: object) -> LineIO:
    cfg = IoConfig(
        trigger=TriggerInputConfig(line=TRIGGER, debounce_ms=5),
        reject=RejectConfig(line=REJECT, delay_ms=DELAY_S * 1000, pulse_ms=PULSE_S * 1000, **reject),  # type: ignore[arg-type]
        ready=OutputLineConfig(line=READY),
        fault=OutputLineConfig(line=FAULT),
    )
    return LineIO(cfg, chips=lambda _name: chip, state=state, emit=events, agent_state=lambda: "running")


@pytest.fixture
def rig() -> Iterator[tuple[MemoryChip, LineIO, Triggers, LineState, RecordingSink, Conveyor]]:
    chip, state, events = MemoryChip(), LineState(), RecordingSink()
    parts = [Part(defect=i % 3 == 0) for i in range(12)]
    parts[6] = Part(defect=True, infer_s=0.45)  # inference far slower than the reject window
    parts[9] = Part(defect=False, infer_s=0.45)  # a slow good part: nothing to fire, nothing late
    conveyor = Conveyor(parts)
    io = _io(chip, events, state)
    triggers = Triggers(conveyor.inspect, state=state, on_result=io.on_result)
    triggers.start()
    io.start(triggers)
    yield chip, io, triggers, state, events, conveyor
    io.stop()
    triggers.stop()


def test_every_defective_part_is_rejected_on_time_and_no_good_one(rig) -> None:  # type: ignore[no-untyped-def]
    chip, io, _triggers, state, events, conveyor = rig
    conveyor.run(chip)
    time.sleep(DELAY_S + PULSE_S + 0.5)
    pulses = chip.pulses(REJECT)
    on_time = [seq for seq, p in enumerate(conveyor.parts, 1) if p.defect and p.infer_s < DELAY_S]
    assert len(pulses) == len(on_time), (pulses, on_time)
    for seq, (start, end) in zip(on_time, pulses, strict=True):
        planned = conveyor.edges[seq] + DELAY_S
        assert planned - 0.001 <= start <= planned + TOLERANCE_S, (seq, start - planned)
        assert PULSE_S - 0.005 <= end - start <= PULSE_S + TOLERANCE_S
    snap = state.snapshot()
    assert snap.late_rejects == 1 and snap.rejects == len(on_time)
    late = events.of(EventKind.LINE)
    assert [e.details["trigger"] for e in late] == [7]  # type: ignore[typeddict-item]
    assert not chip.level(REJECT)
    assert io.health()["reject_jitter"]["count"] == len(on_time)


def test_ready_is_on_and_fault_off_while_running_and_reversed_at_stop(rig) -> None:  # type: ignore[no-untyped-def]
    chip, io, *_ = rig
    assert chip.level(READY) and not chip.level(FAULT)
    io.stop()
    assert not chip.level(READY) and chip.level(FAULT)


def test_a_bouncing_input_triggers_once_per_part(rig) -> None:  # type: ignore[no-untyped-def]
    chip, io, _triggers, state, *_ = rig
    for part in range(3):  # three parts, each edge chattering for 3 ms (kernel timestamps)
        t0 = time.monotonic() + part * 0.25
        for k in range(4):
            chip.drive(TRIGGER, True, t0 + k * 0.001)
            chip.drive(TRIGGER, False)
        time.sleep(0.1)
    assert state.snapshot().triggers == 3
    assert io.bounced == 9


def test_triggers_faster_than_inspection_are_counted_never_queued_without_bound() -> None:
    state, release = LineState(), threading.Event()
    done: list[int] = []

    def slow(stamp: TriggerStamp) -> ResultPayload:
        release.wait(5)
        done.append(stamp.seq)
        return {"label": "ok", "defect": False}  # type: ignore[typeddict-item]

    triggers = Triggers(slow, state=state, pending=2)
    triggers.start()
    try:
        refused = [triggers.fire("gpio") is None for _ in range(50)]
        snap = state.snapshot()
        assert snap.triggers == 50
        assert 47 <= sum(refused) <= 48 and snap.missed == sum(
            refused
        )  # 2 waiting (+ 1 in flight, once taken)
        release.set()
        deadline = time.monotonic() + 5
        while len(done) < 50 - sum(refused) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(done) == 50 - sum(refused)
        assert triggers.fire("gpio") is not None  # and the line goes on
    finally:
        release.set()
        triggers.stop()


def test_edges_the_kernel_lost_are_counted_as_missed() -> None:
    """The kernel numbers every edge it sees; edges its buffer dropped show as a gap in the numbers."""
    chip, state = MemoryChip(), LineState()
    io = _io(chip, RecordingSink(), state)
    triggers = Triggers(lambda s: {"label": "ok", "defect": False}, state=state)  # type: ignore[arg-type,return-value,misc]
    triggers.start()
    io.start(triggers)
    try:
        chip.pulse(TRIGGER)
        time.sleep(0.1)
        chip.inputs[TRIGGER].seq += 4  # four edges seen by the kernel and lost from its buffer
        chip.pulse(TRIGGER)
        time.sleep(0.3)
        snap = state.snapshot()
        assert (snap.triggers, snap.missed) == (2, 4)
    finally:
        io.stop()
        triggers.stop()
