"""Inspection continues at full rate through the faults a plant network and a line bring.

Each test measures inspected frames per second over a window without the fault and over a window
with it, in the same run against the same in-process agent, and asserts a generous ratio (>= 0.7):
a fault that held the pipeline (a client holding a lock the publish thread needs, an unbounded
queue of triggers, a thread spinning on malformed input) drops the rate far below that. The
figures are printed (``pytest -s``) as a record, not timed asserts. The agent runs in this process
so the clients' threads compete with it for the GIL and the 2 cores: harsher than production.

OPC UA uses 20 clients, not 50: each asyncua client is a full session (secure channel, keep-alive
and subscription machinery) and 50 of them on a 2-core test machine measure the client side, not
the server (docs/line.md, "what is tested how"). Modbus uses 50.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.config import load_config
from agent.line.chip import MemoryChip
from agent.line.modbus import ModbusServer
from agent.line.opcua import OpcuaServer
from agent.line.sparkplug import SparkplugNode
from tests.support.agentproc import write_config
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = [pytest.mark.integration, pytest.mark.slow]

pymodbus_client = pytest.importorskip("pymodbus.client")
asyncua = pytest.importorskip("asyncua")

WINDOW_S = 3.0
MIN_RATIO = 0.7
TRIGGER = 17


def _wait(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _rate(agent: Agent, seconds: float = WINDOW_S) -> float:
    """Inspected frames per second over the next ``seconds``."""
    before, t0 = agent.pipeline.counters.inspected, time.monotonic()
    time.sleep(seconds)
    return (agent.pipeline.counters.inspected - before) / (time.monotonic() - t0)


def _run(config: Path) -> Iterator[Agent]:
    agent = Agent(load_config(config))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    _wait(lambda: all(getattr(p, "port", 1) for p in agent.lines[0].parts))
    yield agent
    agent.stop("test over")
    thread.join(20)


@pytest.fixture
def continuous(mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path) -> Iterator[Agent]:
    """A line camera at 15 fps (the line's full rate) with every protocol on."""
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:3",
        camera={"fps": 15, "realtime": True},
        modbus={"listen": "127.0.0.1:0", "unit_id": 1},
        opcua={"listen": "127.0.0.1:0"},
        sparkplug={"enabled": True, "group_id": unique_prefix},
    )  # fmt: skip
    yield from _run(config)


def _part(agent: Agent, kind: type) -> Any:
    return next(p for p in agent.lines[0].parts if isinstance(p, kind))


def _assert_full_rate(name: str, baseline: float, faulted: float, **counts: Any) -> None:
    print(f"{name}: {baseline:.1f} -> {faulted:.1f} inspected/s ({faulted / baseline:.2f}x) {counts}")
    assert baseline > 0 and faulted >= MIN_RATIO * baseline, (name, baseline, faulted, counts)


def test_fifty_modbus_clients_polling_and_idle_ones_leave_the_rate(continuous: Agent) -> None:
    port = _part(continuous, ModbusServer).port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]  # connect, never read
    stop, reads = threading.Event(), [0] * 50

    def poll(i: int) -> None:  # a PLC scan: read the block every 100 ms
        client = pymodbus_client.ModbusTcpClient("127.0.0.1", port=port, timeout=10)
        assert client.connect()
        try:
            while not stop.is_set():
                assert len(client.read_input_registers(0, count=24, device_id=1).registers) == 24
                reads[i] += 1
                stop.wait(0.1)
        finally:
            client.close()

    try:
        baseline = _rate(continuous)
        pollers = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(50)]
        for t in pollers:
            t.start()
        _wait(lambda: all(reads))
        connected = _part(continuous, ModbusServer).clients()
        faulted = _rate(continuous)
        stop.set()
        for t in pollers:
            t.join(10)
    finally:
        for s in idle:
            s.close()
    _assert_full_rate("modbus 50 polling + 10 idle", baseline, faulted, reads=sum(reads), connected=connected)
    assert connected >= 60 and min(reads) > 0


def test_opcua_clients_reading_and_an_idle_one_leave_the_rate(continuous: Agent) -> None:
    port = _part(continuous, OpcuaServer).port
    url = f"opc.tcp://127.0.0.1:{port}/inspection/"
    reads = [0] * 20

    async def one(i: int, until: float) -> None:
        async with asyncua.Client(url, timeout=20) as client:
            ns = await client.get_namespace_index("urn:inspection-agent")
            parts = await client.nodes.objects.get_child(
                [f"{ns}:Inspection", f"{ns}:cam-01", f"{ns}:PartCount"]
            )
            while time.monotonic() < until:
                await parts.read_value()
                reads[i] += 1
                await asyncio.sleep(0.2)

    async def clients() -> None:
        until = time.monotonic() + WINDOW_S + 6.0  # time to connect, then the window
        await asyncio.gather(*(one(i, until) for i in range(20)))

    idle = socket.create_connection(("127.0.0.1", port))  # connects and never says hello
    try:
        baseline = _rate(continuous)
        runner = threading.Thread(target=lambda: asyncio.run(clients()), daemon=True)
        runner.start()
        _wait(lambda: all(reads))
        connected = _part(continuous, OpcuaServer).clients()
        faulted = _rate(continuous)
        runner.join(30)
    finally:
        idle.close()
    _assert_full_rate("opcua 20 reading + 1 idle", baseline, faulted, reads=sum(reads), connected=connected)
    assert connected >= 21 and min(reads) > 0


def test_a_flood_of_malformed_sparkplug_commands_leaves_the_rate(
    continuous: Agent, mosquitto: Mosquitto
) -> None:
    node = _part(continuous, SparkplugNode)
    with Subscriber(mosquitto.port, "unused/never") as pub:
        baseline = _rate(continuous)
        sent, t0 = 0, time.monotonic()
        before = continuous.pipeline.counters.inspected
        while time.monotonic() - t0 < WINDOW_S:  # ~500 garbage commands a second, both topics
            pub.publish(node.topic("NCMD"), b"\xff\x00garbage" * 8, qos=0)
            pub.publish(node.topic("DCMD", device=True), b"\x0a\xff\xff", qos=0)
            sent += 2
            time.sleep(0.004)
        faulted = (continuous.pipeline.counters.inspected - before) / (time.monotonic() - t0)
    _wait(lambda: node.malformed >= sent * 0.9, 10)
    _assert_full_rate("sparkplug malformed flood", baseline, faulted, sent=sent, counted=node.malformed)


# -- trigger mode: the rate is the inspection's own ------------------------------------------------


@pytest.fixture
def triggered(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Agent, MemoryChip]]:
    """Trigger mode with the photo-eye on the in-memory chip (no GPIO here) and the Modbus coil."""
    chip = MemoryChip()
    monkeypatch.setattr("agent.line.service.open_gpiod", lambda _name: chip)
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:3",
        camera={"mode": "trigger", "fps": 30, "realtime": True},
        io={"trigger": {"line": TRIGGER, "debounce_ms": 5}},
        modbus={"listen": "127.0.0.1:0", "unit_id": 1},
    )  # fmt: skip
    for agent in _run(config):
        yield agent, chip


def _paced(agent: Agent, chip: MemoryChip, period_s: float, seconds: float, bounce: int = 0) -> float:
    """Parts every ``period_s`` on the photo-eye (each edge chattering ``bounce`` extra times)."""
    before, t0 = agent.pipeline.counters.inspected, time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        edge = time.monotonic()
        for k in range(bounce + 1):
            chip.drive(TRIGGER, True, edge + k * 0.0008)
            chip.drive(TRIGGER, False, edge + k * 0.0008 + 0.0004)
        n += 1
        time.sleep(max(0.0, t0 + n * period_s - time.monotonic()))
    time.sleep(0.5)  # the last part's inspection
    return (agent.pipeline.counters.inspected - before) / (time.monotonic() - t0 - 0.5)


def test_triggers_faster_than_the_inspection_rate_keep_it_and_are_counted(
    triggered: tuple[Agent, MemoryChip],
) -> None:
    agent, chip = triggered
    line = agent.lines[0]
    # The baseline: one trigger at a time, the next as soon as the last result is back. Flooded, the
    # rate comes out higher (about 1.9x here): a trigger waiting in the queue captures its frame
    # while the last one is still in inference. What must not happen is a collapse, or no refusals.
    before, t0 = agent.pipeline.counters.inspected, time.monotonic()
    while time.monotonic() - t0 < WINDOW_S:
        stamp = line.fire("gpio")
        assert stamp is not None
        stamp.reply.result(10)
    full = (agent.pipeline.counters.inspected - before) / (time.monotonic() - t0)
    missed0 = line.state.snapshot().missed
    flooded = _paced(agent, chip, period_s=1.0 / (4 * full), seconds=WINDOW_S)  # 4x faster
    s = line.state.snapshot()
    _assert_full_rate("triggers at 4x the inspection rate", full, flooded, missed=s.missed - missed0)
    assert s.missed - missed0 > 0 and s.overlapped > 0  # refused and counted, never queued without bound


def test_a_bouncing_input_leaves_the_rate_and_counts_one_trigger_per_part(
    triggered: tuple[Agent, MemoryChip],
) -> None:
    agent, chip = triggered
    line = agent.lines[0]
    clean = _paced(agent, chip, period_s=0.15, seconds=WINDOW_S)
    t0 = line.state.snapshot().triggers
    bouncing = _paced(agent, chip, period_s=0.15, seconds=WINDOW_S, bounce=3)
    parts = line.state.snapshot().triggers - t0
    assert line.io is not None
    _assert_full_rate("bouncing input (3 extra edges)", clean, bouncing, parts=parts, bounced=line.io.bounced)
    assert line.io.bounced == 3 * parts and line.state.snapshot().missed == 0
