"""A Modbus TCP server with the register map of docs/line.md (pymodbus, extra ``plc``).

The same numbers are served as input registers (function 4) and holding registers (function 3),
since many PLCs read only one kind; they are filled from :class:`LineState` at each request, so a
client that connects and never reads costs nothing and a slow one never holds up a frame. Coil 0
triggers an inspection; holding register 32 turns the reject gate off and on. A write anywhere
else, or a value out of range, is answered with a Modbus exception and changes nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import structlog

from agent.config.line import ModbusConfig
from agent.line import require, serve_in_thread
from agent.line.state import STATE_CODES, LineState, Snapshot

log = structlog.get_logger(__name__)

READ_COUNT = 24  # registers 0..23: the read-only map
REJECT_ENABLE = 32  # the one writable holding register
MODEL_VERSION_AT, MODEL_VERSION_REGS = 16, 8
_U16 = 0xFFFF

FireFn = Callable[[str], Any]  # Triggers.fire: returns a stamp (with .reply) or None when refused


def _u32(value: int) -> list[int]:
    value &= 0xFFFFFFFF
    return [value >> 16, value & _U16]


def _ascii(text: str, regs: int) -> list[int]:
    raw = text.encode("ascii", "replace")[: regs * 2].ljust(regs * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, regs * 2, 2)]


def registers(s: Snapshot) -> list[int]:
    """The read-only map (docs/line.md): 24 registers from one snapshot."""
    regs = [
        *_u32(s.parts),  # 0-1
        *_u32(s.defects),  # 2-3
        s.label_index & _U16,  # 4
        min(_U16, max(0, round(s.score * 1000))),  # 5
        min(_U16, max(0, round(s.latency_ms))),  # 6
        STATE_CODES.get(s.state, 3),  # 7
        *_u32(s.triggers),  # 8-9
        s.missed & _U16,  # 10
        s.overlapped & _U16,  # 11
        s.rejects & _U16,  # 12
        s.late_rejects & _U16,  # 13
        s.trigger_seq & _U16,  # 14
        int(s.reject_enabled),  # 15
    ]
    return regs + _ascii(s.model_version, MODEL_VERSION_REGS)  # 16-23


class ModbusServer:
    """Runs pymodbus on its own thread and event loop; ``start`` returns once it listens."""

    name = "modbus"

    def __init__(self, cfg: ModbusConfig, *, state: LineState, fire: FireFn) -> None:
        assert cfg.listen is not None
        self._pm = require("pymodbus", "modbus")
        self.cfg = cfg
        self._state = state
        self._fire = fire
        self._pending: Any = None  # the stamp of the last coil trigger
        self.refused_writes = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread, self.port = serve_in_thread(
            "modbus", self._serve, 10.0, f"modbus: cannot listen on {self.cfg.listen}", on_loop=self._set_loop
        )
        log.info("modbus_listening", listen=self.cfg.listen, port=self.port)

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5.0)
        if self._thread is not None:
            self._thread.join(5.0)

    def _set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def clients(self) -> int:
        """TCP connections open now (a PLC that connected and never reads counts too)."""
        server = self._server
        return len(server.active_connections) if server is not None else 0

    async def _serve(self, ready: Future[int]) -> None:
        from pymodbus.server import ModbusTcpServer

        host, _, port = (self.cfg.listen or "").rpartition(":")
        self._server = ModbusTcpServer(self._device(), address=(host.strip("[]"), int(port)))
        await self._server.serve_forever(background=True)
        sockets = self._server.transport.sockets
        ready.set_result(int(sockets[0].getsockname()[1]))
        await self._server.serving

    def _device(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        regs = DataType.REGISTERS
        coils = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        inputs = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        holding = [
            SimData(0, count=READ_COUNT, values=0, datatype=regs, readonly=True),
            SimData(REJECT_ENABLE, count=1, values=1, datatype=regs),
        ]
        table = [SimData(0, count=READ_COUNT, values=0, datatype=regs, readonly=True)]
        return SimDevice(self.cfg.unit_id, simdata=(coils, inputs, holding, table), action=self._action)

    async def _action(  # noqa: PLR0917 - pymodbus calls it with six positional arguments
        self, fc: int, start: int, address: int, count: int, current: list[int], values: Sequence[Any] | None
    ) -> Any:
        """Every request passes here: reads are filled from the snapshot, writes are checked."""
        if values is None:  # a read, or the read-back after a write
            self._fill(fc, current)
            return None
        if fc in (5, 15):
            return self._write_coil(values)
        return self._write_register(address, values)

    def _fill(self, fc: int, current: list[int]) -> None:
        snap = self._state.snapshot()
        if fc in (1, 5, 15):  # coil 0 is on while a coil trigger is waiting or being inspected
            current[0] = int(self._pending is not None and not self._pending.reply.done())
        elif fc == 2:  # discrete input 0: the last result was a defect
            current[0] = int(snap.defect)
        else:  # registers: the whole block from one snapshot
            current[:READ_COUNT] = registers(snap)
            if len(current) > READ_COUNT:
                current[READ_COUNT] = int(snap.reject_enabled)

    def _write_coil(self, values: Sequence[Any]) -> Any:
        if values and bool(values[0]):
            self._pending = self._fire("modbus")
        return None

    def _write_register(self, address: int, values: Sequence[Any]) -> Any:
        codes = self._pm.constants.ExcCodes
        if address != REJECT_ENABLE or len(values) != 1 or values[0] not in (0, 1):
            self.refused_writes += 1
            log.warning("modbus_write_refused", address=address, values=list(values)[:4])
            return codes.ILLEGAL_VALUE
        self._state.update(reject_enabled=bool(values[0]))
        return None
