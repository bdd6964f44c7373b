"""The line integration: digital I/O (part-present trigger, reject gate, ready/fault interlock), and
the protocols control panels already speak (Modbus TCP, OPC UA, Sparkplug B, Home Assistant).

One module per protocol or backend, each importing its library lazily and failing at start with
the extra to install (:func:`require`). Every part sees results as a frame observer; the shared
numbers (counters, last result) live in :class:`agent.line.state.LineState`. docs/line.md has the
wiring, the register map, the node tree and the timing figures.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from types import ModuleType

import structlog

from agent.errors import LineError

log = structlog.get_logger(__name__)

EXTRAS = {"gpiod": "io", "pymodbus": "plc", "asyncua": "plc", "google.protobuf": "sparkplug"}


def require(module: str, part: str) -> ModuleType:
    """Import ``module`` for ``part`` or raise LineError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.partition(".")[0], EXTRAS.get(module.rpartition(".")[0], "io"))
        raise LineError(
            f"{part} needs the Python package {module!r}: pip install 'edge-inspection-agent[{extra}]'"
        ) from exc


def serve_in_thread(
    name: str,
    serve: Callable[[Future[int]], Awaitable[None]],
    timeout: float,
    failure: str,
    on_loop: Callable[[asyncio.AbstractEventLoop], None],
) -> tuple[threading.Thread, int]:
    """Run a protocol server's coroutine on its own event loop and thread; wait for its port.

    ``serve`` resolves the future with the bound port once the server listens; an error before
    that, or no port within ``timeout``, stops the start with ``failure: why``; an error after it
    is logged (the line goes on without that server). ``on_loop`` hands the loop to the owner,
    which stops the server through it.
    """
    ready: Future[int] = Future()

    def run() -> None:
        loop = asyncio.new_event_loop()
        on_loop(loop)
        try:
            loop.run_until_complete(serve(ready))
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.exception(f"{name}_server_failed")
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        return thread, ready.result(timeout)
    except Exception as exc:  # the server's own error, or the timeout
        raise LineError(f"{failure}: {exc}") from exc
