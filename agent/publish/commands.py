"""Remote commands: ``{root}/cmd/{name}`` with a JSON object in, one JSON reply out.

The router validates every payload against the command's small schema before the
handler sees it, and turns every failure into an error reply: nothing a remote
sender writes can raise out of here. Handlers run on one worker thread so a slow one
(a model reload) never stalls the MQTT network loop.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.errors import CommandError

log = structlog.get_logger(__name__)

MAX_PAYLOAD = 64 * 1024
Handler = Callable[[dict[str, Any]], dict[str, Any]]
# {"required": {"path": str}, "optional": {"sha256": str}}; float accepts ints, int refuses bools.
Schema = Mapping[str, Mapping[str, type | tuple[type, ...]]]
Reply = Callable[["CommandRequest", dict[str, Any]], None]

_QUEUE_SIZE = 32
RATE_PER_S = 20.0  # commands accepted per second on average...
BURST = 40  # ...and at once; beyond, the reply is "busy" (a flood costs a reply each, nothing more)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One received command and where its reply goes."""

    name: str
    payload: bytes
    reply_topic: str
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Command:
    handler: Handler
    schema: Schema


def ping(args: dict[str, Any]) -> dict[str, Any]:
    """The example command: proves the device reads its commands and can answer."""
    return {"pong": True, "ts": time.time(), **({"echo": args["echo"]} if "echo" in args else {})}


PING_SCHEMA: Schema = {"required": {}, "optional": {"echo": str}}


class CommandRouter:
    """Commands by name, their schemas, and the worker thread that runs them."""

    def __init__(
        self, max_payload: int = MAX_PAYLOAD, rate_per_s: float = RATE_PER_S, burst: int = BURST
    ) -> None:
        self._max_payload = max_payload
        self._rate, self._burst = rate_per_s, float(burst)
        self._tokens, self._refilled = float(burst), time.monotonic()
        self._commands: dict[str, _Command] = {}
        self._queue: queue.Queue[tuple[CommandRequest, Reply] | None] = queue.Queue(_QUEUE_SIZE)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.register("ping", ping, PING_SCHEMA)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._commands))

    def register(self, name: str, handler: Handler, schema: Schema | None = None) -> None:
        """Add (or replace) a command. ``schema`` lists required and optional keys with their types."""
        schema = schema or {}
        unknown = set(schema) - {"required", "optional"}
        if unknown:
            raise ValueError(f"command {name!r}: schema keys must be 'required'/'optional', not {unknown}")
        self._commands[name] = _Command(handler, schema)

    def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """Validate and run one command; always return a reply, never raise."""
        try:
            command = self._commands.get(name)
            if command is None:
                raise CommandError(f"unknown command (known: {', '.join(self.names)})")
            args = self._parse(payload)
            problem = _check(args, command.schema)
            if problem:
                raise CommandError(problem)
            result = command.handler(args)
        except CommandError as exc:
            log.warning("command_refused", command=name, error=str(exc))
            return {"ok": False, "command": name, "error": str(exc)}
        except Exception:  # a handler bug must not reach the network thread or the sender
            log.exception("command_failed", command=name)
            return {"ok": False, "command": name, "error": "internal error"}
        return {"ok": True, "command": name, "result": result}

    def _parse(self, payload: bytes) -> dict[str, Any]:
        if len(payload) > self._max_payload:
            raise CommandError(f"payload is {len(payload)} bytes, more than {self._max_payload}")
        if not payload.strip():
            return {}  # `mosquitto_pub -n`: a command without arguments
        try:
            args = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CommandError(f"malformed JSON: {_short(exc)}") from exc
        if not isinstance(args, dict):
            raise CommandError(f"payload must be a JSON object, not {type(args).__name__}")
        return args

    def submit(self, request: CommandRequest, reply: Reply) -> None:
        """Queue a command for the worker (called on the network thread, never blocks)."""
        self._ensure_worker()
        if not self._take_token():
            log.warning("command_refused_rate_limit", command=request.name)
            reply(
                request, {"ok": False, "command": request.name, "error": "busy: too many commands, slow down"}
            )
            return
        try:
            self._queue.put_nowait((request, reply))
        except queue.Full:
            log.warning("command_refused_too_many_pending", command=request.name)
            reply(request, {"ok": False, "command": request.name, "error": "busy: too many pending commands"})

    def _take_token(self) -> bool:
        """A token bucket over every command (network thread only: no lock needed)."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="commands", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            request, reply = item
            response = self.handle(request.name, request.payload)
            try:
                reply(request, response)
            except Exception:  # the reply path must not kill the worker
                log.exception("command_reply_failed", command=request.name)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the commands already queued."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("command_worker_busy_at_shutdown", pending=self._queue.qsize())
            return
        worker.join(timeout)


def reply_topic(command_topic: str, response_topic: str | None) -> str:
    """Where a reply goes: the MQTT 5 response topic when usable, else ``{command topic}/reply``."""
    if response_topic and not any(c in response_topic for c in "#+\0"):
        return response_topic
    return f"{command_topic}/reply"


def confine(path: str, store: Path) -> Path:
    """``path`` resolved (relative to ``store``); CommandError when it leaves the store directory."""
    try:
        root = store.resolve()
        target = (root / path).resolve()
    except (OSError, ValueError) as exc:
        raise CommandError(f"invalid path {path!r}") from exc
    if target != root and root not in target.parents:
        raise CommandError(f"path {path!r} is outside the model store")
    return target


def _check(args: dict[str, Any], schema: Schema) -> str | None:
    required = schema.get("required", {})
    optional = schema.get("optional", {})
    missing = sorted(set(required) - set(args))
    if missing:
        return f"missing key(s): {', '.join(missing)}"
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        return f"unknown key(s): {', '.join(map(str, unknown))}"
    for key, value in args.items():
        expected = required.get(key) or optional[key]
        if not _is(value, expected):
            return f"{key}: expected {_type_name(expected)}, got {type(value).__name__}"
    return None


def _is(value: Any, expected: type | tuple[type, ...]) -> bool:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _type_name(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(k.__name__ for k in kinds)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:120]
