"""The outbox's owner thread: commits QoS 1 messages in batches, sends them in order, forgets them on PUBACK.

``publish()`` only puts a message on a queue (microseconds). This thread takes whatever
is queued, commits it in one transaction (one fsync for the batch), then hands the
oldest unsent rows to the transport while fewer than ``window`` are unacknowledged.
paho keeps the unacknowledged ones and resends them itself after a reconnect, so the
send cursor only moves forward within a process; a restart resends every stored row.
PUBACKs are collected on a deque that this thread empties at each commit and, while messages
are in flight, every ``_LINGER_S``; all SQLite work stays on this thread.

A full disk does not stop this thread: the batch is retried with the outbox squeezed
below what it stores (lower priorities evicted first, every drop counted), the state
is reported (``disk_full`` in :meth:`Spool.stats`, a callback for the event), and every
``FULL_PROBE_S`` the configured bound is tried again, so it recovers by itself when
space returns. Any other failure of this thread is recorded and makes :meth:`put`
raise, so the agent stops (and systemd restarts it) instead of queueing in memory.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from agent.errors import PublishError
from agent.publish.base import Message, Priority
from agent.publish.outbox import Outbox, OutboxFull, Row

log = structlog.get_logger(__name__)

_BATCH = 2000  # queue items per transaction
_BATCH_BYTES = 256 << 10  # and message bytes per transaction (what a low disk must find room for)
_TICK_S = 0.5  # wake-up period when idle (age expiry, stop)
# Group commit: after the first message of a batch, wait this long for more before committing, so
# a defect storm pays one fsync per ~20 ms instead of one per frame. Nothing is sent (so nothing is
# acknowledged) before its commit, so this delays delivery by at most this much and weakens nothing.
# 20 rather than 10 ms: on the bench machine each fsync costs ~0.5 ms of kernel CPU, and a storm's
# outbox writer went from ~185 to ~120 µs per frame (issue 20).
_LINGER_S = 0.02
_EXPIRE_EVERY_S = 30.0
FULL_PROBE_S = 2.0  # while the disk is full: how often to look for room again
ROOM_BACK = 1 << 20  # room (free disk + free pages) that ends the disk-full state
_FULL_TRIES = 6  # squeezes per batch before its messages are dropped (and counted)

# Told when the disk fills up (True, reason) and when it has room again (False, reason).
DiskFullHook = Callable[[bool, str], None]


class Transport(Protocol):
    """Where the spool sends rows: the MQTT client."""

    def send(self, msg: Message) -> int:
        """Hand a QoS 1 message to the network layer; return its packet id. Raise PublishError if refused."""
        ...

    def send_volatile(self, msg: Message) -> None:
        """Send a QoS 0 message that rode along (see :meth:`Spool.ride_along`); never raises."""
        ...


class _Op:
    """Queue item kinds (plain tuples keep put() cheap)."""

    MSG, SEND, ONLINE, OFFLINE, STOP, WAKE = range(6)


class Spool:
    """Durable, ordered QoS 1 delivery over a :class:`Transport`."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        max_age_s: float,
        transport: Transport,
        window: int,
        *,
        on_disk_full: DiskFullHook | None = None,
    ) -> None:
        self._path, self._max_bytes, self._max_age_s = path, max_bytes, max_age_s
        self._transport = transport
        self._window = window
        self._queue: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        # PUBACKs (mid, failure) from paho's thread: collected, not a wake-up (see acked()).
        self._acks: collections.deque[tuple[int, str | None]] = collections.deque()
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._accepted = 0  # messages accepted by put()
        self._gathering = False  # the writer is lingering for a batch (QoS 0 may ride along)
        self._window_full = False  # the writer waits for PUBACKs to send more (see acked())
        self._riders = 0  # QoS 0 messages taken by ride_along() (under _seq_lock)
        self._riders_sent = 0  # of them, handed to the transport (writer thread only)
        self._committed = 0  # messages accepted and stored (or dropped) by the writer
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: PublishError | None = None
        self._outbox: Outbox | None = None
        # Owned by the writer thread; read (as whole ints) by stats().
        self._online = False
        self._cursor = 0
        self._inflight: dict[int, int] = {}  # paho mid -> row id
        self.sent = 0
        self.rejected = 0
        self.depth = 0
        self.bytes = 0
        self.dropped: dict[str, int] = {}
        self.expired = 0
        self.disk_full: str | None = None  # why, while the disk refuses commits
        self.failure: str | None = None  # the writer thread ended on this error
        self._on_disk_full = on_disk_full
        self._full_probe = 0.0
        self._unstored_acks: list[int] = []  # acked rows a full disk did not let us delete yet

    def start(self, timeout: float = 10.0) -> None:
        """Open the outbox on the writer thread; raise PublishError when it cannot be opened."""
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()
        if not self._opened.wait(timeout):
            raise PublishError(f"outbox {self._path} did not open within {timeout:.0f} s")
        if self._open_error is not None:
            raise self._open_error

    # ---- any thread -------------------------------------------------------------------------
    def put(self, msg: Message) -> None:
        if self.failure is not None:
            raise PublishError(f"the outbox writer stopped: {self.failure}")
        with self._seq_lock:
            self._accepted = next(self._seq)
            self._queue.put((_Op.MSG, msg))

    def ride_along(self, msg: Message, *, busy: bool = False) -> bool:
        """Take a QoS 0 message to send with the batch being gathered; False: send it yourself.

        During a defect storm the writer sends a burst every ``_LINGER_S``; a result published
        directly between bursts costs paho's thread a wake-up of its own. Riding along delays it
        by at most the linger. ``busy`` (the caller's QoS 0 messages come many per linger, as in a
        QoS 0 storm) starts a batch of its own: a burst per ``_LINGER_S`` instead of a wake-up of
        paho's thread per message (a 300 fps QoS 0 storm: ~420 -> ~285 µs CPU per frame). Once
        one rides, the next ones do too until it is sent, so a topic's messages never overtake
        each other."""
        with self._seq_lock:
            idle = not self._gathering and self._riders == self._riders_sent
            if self.failure is not None or (idle and not busy):
                return False
            self._riders += 1
            self._queue.put((_Op.SEND, msg))
        return True

    def acked(self, mid: int, failure: str | None) -> None:
        """A PUBACK arrived (paho thread); ``failure`` is the broker's reason when it refused.

        Not a wake-up: paho reports every QoS 0 message written (each result) the same way, and a
        wake-up per message cost the writer more than its commits. While messages are in flight
        the writer looks every ``_LINGER_S`` (and whenever it commits), so an acknowledged row is
        forgotten within that; until then it only costs space (a crash resends it: QoS 1 allows).
        Only when the window is full (a backlog being replayed) does the first PUBACK wake it,
        so the replay does not idle between bursts."""
        self._acks.append((mid, failure))
        if self._window_full:
            self._window_full = False
            self._queue.put((_Op.WAKE, None))

    def online(self, hook: Callable[[], None]) -> None:
        """The broker accepted us: run ``hook`` on this thread first (status), then send."""
        self._queue.put((_Op.ONLINE, hook))

    def offline(self) -> None:
        self._queue.put((_Op.OFFLINE, None))

    def flush(self, timeout: float) -> bool:
        """Wait until every message accepted so far is committed (not necessarily sent), and every
        QoS 0 message that rode along is handed to the transport."""
        target, riders = self._accepted, self._riders
        with self._cond:
            return self._cond.wait_for(
                lambda: self._committed >= target and self._riders_sent >= riders, timeout
            )

    def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty: every accepted message acknowledged (or dropped)."""
        target = self._accepted
        with self._cond:
            return self._cond.wait_for(lambda: self._committed >= target and self.depth == 0, timeout)

    def stop(self, timeout: float) -> None:
        """Commit what is queued, close the outbox, end the thread."""
        if self._thread is None:
            return
        self._queue.put((_Op.STOP, None))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("outbox_writer_stop_timeout", timeout_s=timeout)

    # ---- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._outbox = Outbox(self._path, self._max_bytes, self._max_age_s)
        except PublishError as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._publish_counts(self._outbox)  # before start() returns: drain() must see the backlog
        self._opened.set()
        try:
            self._loop(self._outbox)
        except Exception as exc:  # not per message: say so, and make put() raise (the agent exits)
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("outbox_writer_failed")
        finally:
            self._outbox.close()
            with self._cond:
                self._cond.notify_all()

    def _loop(self, box: Outbox) -> None:
        last_expiry = 0.0
        stopping = False
        while not stopping:
            ops = self._take()
            stopping = self._apply(box, ops)
            if time.monotonic() - last_expiry > _EXPIRE_EVERY_S:
                last_expiry = time.monotonic()
                self._commit(box, box.expire)
            self._probe(box)
            self._send_riders(ops)
            self._pump(box)
            self._publish_counts(box)

    def _take(self) -> list[tuple[int, Any]]:
        wait = _LINGER_S if self._inflight and self._online else _TICK_S  # PUBACKs are due
        try:
            ops = [self._queue.get(timeout=wait)]
        except queue.Empty:
            return []
        if ops[0][0] in (_Op.MSG, _Op.SEND) and self._queue.qsize() < _BATCH:
            self._gathering = True
            time.sleep(_LINGER_S)  # one wake-up gathers the batch, not one per put()
        size = 0
        while len(ops) < _BATCH and size < _BATCH_BYTES:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            ops.append(op)
            if op[0] == _Op.MSG:
                size += op[1].size
        self._gathering = False
        return ops

    def _apply(self, box: Outbox, ops: list[tuple[int, Any]]) -> bool:
        """Commit the batch's messages and acks in one transaction, then handle state changes."""
        messages = [arg for kind, arg in ops if kind == _Op.MSG]
        acked, self._unstored_acks = self._unstored_acks, []
        while self._acks:
            self._ack(box, self._acks.popleft(), acked)

        def store() -> None:
            for msg in messages:
                box.append(msg)
            box.delete(acked)

        # Nothing to store (only PUBACKs of QoS 0 messages, a status or a reply): no transaction.
        if messages or acked:
            sizes = dict.fromkeys(Priority, 0)
            for msg in messages:
                sizes[msg.priority] += msg.size
            if not self._commit(box, store, sizes):
                self._give_up(box, messages, acked)
        self._committed += len(messages)  # only after COMMIT (or a counted drop): flush() promises it
        stopping = False
        for kind, arg in ops:
            if kind == _Op.ONLINE:
                self._go_online(arg)
            elif kind == _Op.OFFLINE:
                self._online = False
            elif kind == _Op.STOP:
                stopping = True
        return stopping

    def _commit(
        self, box: Outbox, work: Callable[[], object], sizes: dict[Priority, int] | None = None
    ) -> bool:
        """Run ``work`` in one transaction; on a full disk squeeze the outbox and retry. False: gave up.

        ``sizes``: the bytes by priority of the messages ``work`` adds."""
        sizes = sizes or {}
        size = sum(sizes.values())
        for _ in range(_FULL_TRIES):
            try:
                box.evict_for(sizes)
                with box.transaction(size):
                    work()
                return True
            except OutboxFull as exc:
                self._full(box, str(exc))
                box.squeeze(size)
        return False

    def _give_up(self, box: Outbox, messages: list[Message], acked: list[int]) -> None:
        """Even an almost empty outbox did not fit: the batch is dropped and counted (never silently)."""
        for msg in messages:
            box.count_lost(msg.priority)
        self._unstored_acks = acked  # the rows stay until a delete fits; they are acknowledged already
        log.error("outbox_batch_lost", messages=len(messages), reason="disk full", dropped=dict(box.dropped))

    def _full(self, box: Outbox, reason: str) -> None:
        if self.disk_full is not None:
            return
        self._full_probe = time.monotonic() + FULL_PROBE_S
        self.disk_full = reason
        log.error(
            "outbox_disk_full", path=str(self._path), stored_bytes=box.bytes, dropping="lowest priority first"
        )
        self._tell(True, reason)

    def _probe(self, box: Outbox) -> None:
        """While squeezed: every FULL_PROBE_S, look for room (free disk and free pages in the file);
        with enough of it the configured bound is back. Until then the bound stays low (no flapping)."""
        if self.disk_full is None or time.monotonic() < self._full_probe:
            return
        self._full_probe = time.monotonic() + FULL_PROBE_S
        box.checkpoint()
        if self._unstored_acks and self._commit(box, lambda: box.delete(self._unstored_acks)):
            self._unstored_acks = []
        if box.room() < min(ROOM_BACK, box.max_bytes - box.bytes):
            return
        box.relax()
        was, self.disk_full = self.disk_full, None
        log.info("outbox_disk_space_back", was=was, room_bytes=box.room())
        self._tell(False, "the outbox has room again")

    def _tell(self, full: bool, reason: str) -> None:
        if self._on_disk_full is None:
            return
        try:
            self._on_disk_full(full, reason)
        except Exception:  # the owner's report must not stop delivery
            log.exception("disk_full_hook_failed")

    def _ack(self, box: Outbox, arg: tuple[int, str | None], acked: list[int]) -> None:
        mid, failure = arg
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return  # not ours (status, command reply) or already dropped
        if failure is None:
            acked.append(row_id)
            self.sent += 1
            return
        # Refused by policy (ACL, quota): resending would fail the same way, and mosquitto 2.0
        # also drops the connection, so the row stays parked until a restart or its expiry.
        self.rejected += 1
        row = box.get(row_id)
        log.error("mqtt_message_refused", topic=row.message.topic if row else None, reason=failure)

    def _go_online(self, hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:  # the hook belongs to the publisher; it must not end delivery
            log.exception("on_connect_hook_failed")
        self._online = True

    def _send_riders(self, ops: list[tuple[int, Any]]) -> None:
        """The QoS 0 messages of this batch, in order, just before its QoS 1 burst (one wake-up of
        paho's thread for both)."""
        for kind, arg in ops:
            if kind == _Op.SEND:
                self._transport.send_volatile(arg)
                self._riders_sent += 1

    def _pump(self, box: Outbox) -> None:
        """Send the oldest unsent rows while the window has room."""
        while self._online:
            room = self._window - len(self._inflight)
            if room <= 0:
                self._window_full = True  # the next PUBACK wakes this thread (see acked())
                return
            rows = box.after(self._cursor, min(room, 500))
            if not rows:
                return
            for row in rows:
                if not self._send(row):
                    return

    def _send(self, row: Row) -> bool:
        try:
            mid = self._transport.send(row.message)
        except PublishError as exc:
            log.warning("mqtt_send_failed", error=str(exc))
            self._online = False
            return False
        self._inflight[mid] = row.id
        self._cursor = max(self._cursor, row.id)
        return True

    def _publish_counts(self, box: Outbox) -> None:
        with self._cond:
            self.depth, self.bytes = box.depth, box.bytes
            self.dropped = dict(box.dropped)
            self.expired = box.expired
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        return {
            "outbox_depth": self.depth,
            "outbox_bytes": self.bytes,
            "inflight": len(self._inflight),
            "sent": self.sent,
            "rejected": self.rejected,
            "dropped": dict(self.dropped),
            "expired": self.expired,
            "queued": self._accepted - self._committed,
            "disk_full": self.disk_full,
            "writer_failed": self.failure,
        }
