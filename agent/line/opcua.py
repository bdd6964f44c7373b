"""An OPC UA server (asyncua, extra ``plc``): ``Objects/Inspection/{device}`` with the counters, the
last result and a ``Trigger`` method; only Basic256Sha256 (Sign, SignAndEncrypt) when a certificate
is configured, otherwise None (for a closed cell network; docs/line.md).

The server runs on its own thread and event loop; values are copied from :class:`LineState` every
``REFRESH_S``, so the publish thread never waits on a client and a client that connects and never
reads costs one idle session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import structlog

from agent.config.line import OpcuaConfig
from agent.errors import LineError
from agent.line import require, serve_in_thread
from agent.line.state import LineState, Snapshot

log = structlog.get_logger(__name__)

REFRESH_S = 0.1
TRIGGER_WAIT_S = 10.0

# Variables under Objects/Inspection/{device}: (browse name, variant type name, value from a snapshot).
VARIABLES: tuple[tuple[str, str, Callable[[Snapshot], Any]], ...] = (
    ("PartCount", "UInt64", lambda s: s.parts),
    ("DefectCount", "UInt64", lambda s: s.defects),
    ("LastLabel", "String", lambda s: s.label),
    ("LastLabelIndex", "UInt32", lambda s: s.label_index),
    ("LastScore", "Double", lambda s: s.score),
    ("LastLatencyMs", "Double", lambda s: s.latency_ms),
    ("LastDefect", "Boolean", lambda s: s.defect),
    ("State", "String", lambda s: s.state),
    ("ModelVersion", "String", lambda s: s.model_version),
    ("Triggers", "UInt64", lambda s: s.triggers),
    ("MissedTriggers", "UInt64", lambda s: s.missed),
    ("Rejects", "UInt64", lambda s: s.rejects),
    ("LateRejects", "UInt64", lambda s: s.late_rejects),
)


class TrustedClients:
    """The client certificates allowed a session: every ``*.der``, ``*.pem``, ``*.crt`` file in a
    directory, compared by the SHA-256 of their DER bytes (the way an OPC UA server's trusted
    folder works). The certificates are read again when a file there is added, removed or changed
    (names, sizes and modification times are compared at each session activation), so an
    integrator adds a PLC by copying its certificate there, without a restart; a file that is not
    a certificate is logged once and left out."""

    SUFFIXES = (".der", ".pem", ".crt", ".cer")

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise LineError(f"opcua.trusted_clients: {directory} is not a directory")
        self.directory = directory
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._allowed: set[str] = set()
        self._bad: set[str] = set()

    def allows(self, der: bytes) -> bool:
        seen = self._listing()
        if seen != self._seen:
            self._seen, self._allowed = seen, self._load()
        return fingerprint(der) in self._allowed

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        """Each file's name, size and modification time: a copy within the same second as the
        last read still shows (a directory's own mtime can be that coarse on some filesystems)."""
        entries = []
        for entry in os.scandir(self.directory):
            with contextlib.suppress(OSError):  # removed meanwhile
                st = entry.stat()
                entries.append((entry.name, st.st_size, st.st_mtime_ns))
        return tuple(sorted(entries))

    def _load(self) -> set[str]:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        allowed: set[str] = set()
        for path in sorted(self.directory.iterdir()):
            if path.suffix.lower() not in self.SUFFIXES:
                continue
            try:
                data = path.read_bytes()
                cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                        else x509.load_der_x509_certificate(data))  # fmt: skip
            except (OSError, ValueError) as exc:
                if str(path) not in self._bad:
                    self._bad.add(str(path))
                    log.warning("opcua_trusted_certificate_unreadable", path=str(path), error=str(exc)[:200])
                continue
            allowed.add(fingerprint(cert.public_bytes(Encoding.DER)))
        log.info("opcua_trusted_clients", directory=str(self.directory), certificates=len(allowed))
        return allowed


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _subject(der: bytes) -> str:
    try:
        from cryptography import x509

        return x509.load_der_x509_certificate(der).subject.rfc4514_string()[:200]
    except ValueError:
        return "(not a certificate)"


class _SecureChannelsOnly:
    """asyncua's user manager, used to refuse a session on an unsecured channel or, with a trust
    list, from a client whose certificate is not in it.

    asyncua offers only the configured policies in its endpoints, but its server still opens a
    ``None`` secure channel for a client that skips the endpoint check, and serves it. A session on
    such a channel has an empty peer certificate, so refusing those at activation (BadUserAccessDenied)
    closes the hole. Without ``trusted`` any client certificate is accepted on a secured channel.
    """

    def __init__(self, trusted: TrustedClients | None = None) -> None:
        self.trusted = trusted

    def get_user(
        self, iserver: Any, username: Any = None, password: Any = None, certificate: Any = None
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if not certificate:  # b"" on a None channel
            log.warning("opcua_unsecured_session_refused")
            return None
        if self.trusted is not None and not self.trusted.allows(bytes(certificate)):
            der = bytes(certificate)  # named so that the integrator can find and trust it
            log.warning("opcua_untrusted_client_refused", sha256=fingerprint(der), subject=_subject(der))
            return None
        return User(role=UserRole.User)


class OpcuaServer:
    name = "opcua"

    def __init__(
        self, cfg: OpcuaConfig, base_dir: Path, *, device: str, state: LineState, fire: Callable[[str], Any]
    ) -> None:
        assert cfg.listen is not None
        self._ua = require("asyncua", "opcua")
        self.cfg = cfg
        self._base = base_dir
        self.device = device
        self._state = state
        self._fire = fire
        trusted = cfg.trusted_clients
        self._trusted = TrustedClients(base_dir / trusted) if trusted is not None else None  # checked now
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._nodes: dict[str, Any] = {}
        self._server: Any = None

    def start(self) -> None:
        self._thread, self.port = serve_in_thread(
            "opcua", self._serve, 30.0, f"opcua: cannot serve on {self.cfg.listen}", on_loop=self._set_loop
        )
        log.info("opcua_listening", listen=self.cfg.listen, port=self.port)

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(10.0)

    def _set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def clients(self) -> int:
        """TCP connections open now (asyncua keeps one protocol per connection)."""
        server = self._server
        bserver = getattr(server, "bserver", None) if server is not None else None
        return len(bserver.clients) if bserver is not None else 0

    async def _serve(self, ready: Future[int]) -> None:
        self._stopping = asyncio.Event()
        server = self._server = await self._build()
        async with server:
            ready.set_result(self._bound_port(server))
            while not self._stopping.is_set():
                await self._refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), REFRESH_S)

    async def _build(self) -> Any:
        ua = self._ua.ua
        secure = self.cfg.certificate is not None and self.cfg.private_key is not None
        server = self._ua.Server(user_manager=_SecureChannelsOnly(self._trusted) if secure else None)
        await server.init()
        host, _, port = (self.cfg.listen or "").rpartition(":")
        server.set_endpoint(f"opc.tcp://{host}:{port}/inspection/")
        server.set_server_name(f"inspection-agent {self.device}")
        await self._secure(server, ua)
        idx = await server.register_namespace(self.cfg.namespace)
        root = await server.nodes.objects.add_object(idx, "Inspection")
        device = await root.add_object(idx, self.device)
        snap = self._state.snapshot()
        for name, kind, get in VARIABLES:
            variant = ua.Variant(get(snap), getattr(ua.VariantType, kind))
            self._nodes[name] = await device.add_variable(idx, name, variant)
        await device.add_method(
            idx, "Trigger", self._trigger, [], [ua.VariantType.UInt32, ua.VariantType.String]
        )
        return server

    async def _secure(self, server: Any, ua: Any) -> None:
        if self.cfg.certificate is None or self.cfg.private_key is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return
        server.set_security_policy([
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ])  # fmt: skip
        await server.load_certificate(str(self._base / self.cfg.certificate))
        await server.load_private_key(str(self._base / self.cfg.private_key))

    @staticmethod
    def _bound_port(server: Any) -> int:
        """The port actually bound (``listen`` may ask for port 0)."""
        sockets = server.bserver._server.sockets  # asyncua keeps the asyncio server there
        return int(sockets[0].getsockname()[1])

    async def _refresh(self) -> None:
        ua = self._ua.ua
        snap = self._state.snapshot()
        for name, kind, get in VARIABLES:
            await self._nodes[name].write_value(ua.Variant(get(snap), getattr(ua.VariantType, kind)))

    async def _trigger(self, _parent: Any) -> list[Any]:
        """Trigger(): inspect one part; returns the trigger's sequence number and the result's label."""
        ua = self._ua.ua
        stamp = self._fire("opcua")
        if stamp is None:
            return ua.StatusCode(ua.StatusCodes.BadTooManyOperations)  # type: ignore[no-any-return]
        try:
            payload = await asyncio.wait_for(asyncio.wrap_future(stamp.reply), TRIGGER_WAIT_S)
        except Exception as exc:
            log.warning("opcua_trigger_failed", error=str(exc))
            return ua.StatusCode(ua.StatusCodes.BadInternalError)  # type: ignore[no-any-return]
        return [
            ua.Variant(stamp.seq, ua.VariantType.UInt32),
            ua.Variant(payload["label"], ua.VariantType.String),
        ]
