"""The line integration: digital I/O (part-present trigger, reject gate, ready/fault interlock), and
the protocols control panels already speak (Modbus TCP, OPC UA, Sparkplug B, Home Assistant).

One module per protocol or backend, each importing its library lazily and failing at start with
the extra to install (:func:`require`). Every part sees results as a frame observer; the shared
numbers (counters, last result) live in :class:`agent.line.state.LineState`. docs/line.md has the
wiring, the register map, the node tree and the timing figures.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import ModuleType

from agent.errors import LineError

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
    name: str, run: Callable[[Future[int]], None], timeout: float, failure: str
) -> tuple[threading.Thread, int]:
    """Start a protocol server's event loop on its own thread; wait for the port it listens on.

    ``run`` resolves the future with the bound port once the server listens (or with the error);
    a server that does not come up within ``timeout`` stops the start with ``failure: why``.
    """
    ready: Future[int] = Future()
    thread = threading.Thread(target=run, args=(ready,), name=name, daemon=True)
    thread.start()
    try:
        return thread, ready.result(timeout)
    except Exception as exc:  # the server's own error, or the timeout
        raise LineError(f"{failure}: {exc}") from exc
