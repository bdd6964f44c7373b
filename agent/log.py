"""Logging: structlog, JSON lines unless stderr is a terminal, every line bound to the device and model.

Global logging state lives here and nowhere else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Process-wide context (device id, model version). Not contextvars: worker threads must see it too.
_CONTEXT: dict[str, Any] = {}

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", **context: Any) -> None:
    """Set up structlog once per process; ``context`` (device, model_version…) goes on every line."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            _add_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _CONTEXT.clear()
    bind(**context)
    # Libraries that use stdlib logging (paho) go to the same stream at warning and above.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def bind(**context: Any) -> None:
    """Add or replace context on every following log line (e.g. the model version after a swap)."""
    _CONTEXT.update({k: v for k, v in context.items() if v is not None})


def _add_context(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _CONTEXT.items():
        event.setdefault(key, value)
    return event
