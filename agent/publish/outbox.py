"""Durable outbox: every QoS 1 message is a SQLite row until the broker acknowledges it.

Why SQLite in WAL mode with ``synchronous=FULL``: a committed row must survive both a
``kill -9`` and a power cut. WAL never corrupts the database on either; ``FULL`` also
fsyncs the WAL on every commit, so a commit that returned is on the disk (``NORMAL``
could roll back the last commits on power loss). The cost is one fsync per commit,
which is why the owner (:mod:`agent.publish.spool`) commits in batches.

The store is bounded by bytes and by age. When full, it drops the lowest priority
first (samples, results, events, defects last), oldest first within a priority, and
counts every drop. ``locking_mode=EXCLUSIVE`` keeps a second agent off the same file.

A full *disk* is the same situation with a bound nobody configured: a commit that
fails with ``SQLITE_FULL`` raises :class:`OutboxFull` (the transaction and the
counters are rolled back), and the owner lowers :attr:`Outbox.limit` below what is
stored (:meth:`Outbox.squeeze`), so the retry evicts by the same priorities and the
inserts reuse the freed pages in place. That only works while the disk still has
room for the WAL (a WAL that cannot be checkpointed because the database file cannot
grow would block even deletes), so when the disk runs low the database is not allowed
to grow into the space the WAL needs: ``max_page_count`` is set from the free space
before each transaction (SQLite then refuses the insert, cleanly, with ``SQLITE_FULL``)
and the WAL is checkpointed and truncated after each commit. A full disk is never
mistaken for a corrupt file.

An ``Outbox`` is used by one thread only (the one that opened it): SQLite objects
must stay on the thread that owns the connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.errors import PublishError
from agent.publish.base import Message, Priority

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never go back, replay order is id order
    ts REAL NOT NULL,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    props TEXT,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_priority ON outbox (priority, id);
"""
_CHUNK = 512
_DROP_LOG_EVERY_S = 10.0
_WAL_KEEP = 1 << 20  # the WAL file is truncated to this after a checkpoint
_LOW_DISK = 64 << 20  # below this much free space the database may not grow into the WAL's room
_MARGIN = 64 << 10  # free space always left beside the WAL's
_SQUEEZE = 0.9  # on a full disk, keep at most this share of what is stored (then evict)
_EVICT_CHUNK = 64 << 10  # bytes evicted per transaction on a full disk (the WAL must hold its pages)
# SQLite's primary result codes (the module has them at run time; typeshed does not list them).
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26
_CORRUPT = frozenset({_SQLITE_CORRUPT, _SQLITE_NOTADB})


class OutboxFull(PublishError):
    """The disk (not the configured bound) refused a commit; nothing of that transaction was stored."""


def is_disk_full(exc: sqlite3.Error) -> bool:
    return bool(getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL)


@dataclass(frozen=True, slots=True)
class Row:
    """A stored message and its id (the replay order)."""

    id: int
    message: Message


class Outbox:
    """The SQLite store. Not thread-safe by design: one owner thread."""

    def __init__(self, path: Path, max_bytes: int, max_age_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.limit = max_bytes  # the bound in force: below max_bytes while the disk is full
        self.max_age_s = max_age_s
        self.dropped = {p.label: 0 for p in Priority}  # every drop, bound or age
        self._capped = False  # max_page_count lowered: the disk is low
        self.expired = 0
        self._drop_logged = self._defect_logged = -_DROP_LOG_EVERY_S
        self._count = dict.fromkeys(Priority, 0)
        self._bytes = dict.fromkeys(Priority, 0)
        self._db = self._open()

    @property
    def depth(self) -> int:
        return sum(self._count.values())

    @property
    def bytes(self) -> int:
        return sum(self._bytes.values())

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc):
                raise PublishError(f"outbox {self.path} is in use by another process") from exc
            if is_disk_full(exc):  # not corrupt: setting the file aside would lose its rows
                raise OutboxFull(f"cannot open outbox {self.path}: the disk is full") from exc
            if not _is_corrupt(exc):
                raise PublishError(f"cannot open outbox {self.path}: {exc}") from exc
            db = self._set_aside(exc)
        except OSError as exc:
            raise PublishError(f"cannot open outbox {self.path}: {exc.strerror or exc}") from exc
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.DatabaseError(f"cannot switch to WAL (journal_mode={mode})")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA journal_size_limit={_WAL_KEEP}")
            db.executescript(_SCHEMA)
            for pri, count, size in db.execute("SELECT priority, count(*), sum(size) FROM outbox GROUP BY 1"):
                self._count[Priority(pri)] = count
                self._bytes[Priority(pri)] = size
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """A corrupt file is kept for inspection under a new name; a fresh outbox replaces it."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("outbox_corrupt_set_aside", path=str(self.path), kept_as=str(aside), error=str(exc))
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{aside}{suffix}"))
        self._count = dict.fromkeys(Priority, 0)
        self._bytes = dict.fromkeys(Priority, 0)
        try:
            return self._connect()
        except sqlite3.DatabaseError as again:
            raise PublishError(f"cannot create outbox {self.path}: {again}") from again

    @contextmanager
    def transaction(self, size: int = 0) -> Iterator[None]:
        """Group appends and deletes (``size`` bytes of new messages) into one commit (one fsync).

        On any failure the transaction is rolled back together with the counters it
        changed; a full disk is raised as :class:`OutboxFull`.
        """
        saved = (dict(self._count), dict(self._bytes), dict(self.dropped))
        try:
            self._guard_disk(size)
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
            if self._capped:
                self.checkpoint()  # the WAL's space back at once: the next commit needs it
        except BaseException as exc:
            if self._db.in_transaction:  # SQLite may already have rolled back a failed COMMIT
                self._db.execute("ROLLBACK")
            self._count, self._bytes, self.dropped = saved
            if isinstance(exc, sqlite3.Error) and is_disk_full(exc):
                raise OutboxFull(f"outbox {self.path}: the disk is full") from exc
            raise

    def _guard_disk(self, size: int) -> None:
        """On a low disk, let the database grow only into what leaves room for this commit's WAL
        (its new rows, the pages it frees, the index: about twice ``size``) and a margin."""
        free = _free_bytes(self.path.parent)
        if free >= _LOW_DISK and not self._capped:
            return
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        if free >= _LOW_DISK:
            self._capped = False
            self._db.execute("PRAGMA max_page_count=4294967294").fetchone()
            return
        self._capped = True
        growth = max(0, free - 2 * size - _MARGIN)
        self._db.execute(f"PRAGMA max_page_count={pages + growth // page}").fetchone()

    def squeeze(self, needed: int) -> None:
        """The disk is full: bound the outbox below what it stores now, so the next commit evicts
        (by priority) more than it adds; the checkpoint moves the WAL into the database file."""
        self.limit = max(0, int(min(self.limit, self.bytes) * _SQUEEZE) - needed)
        self.checkpoint()

    def room(self) -> int:
        """Bytes the outbox could still grow by: free disk space plus free pages inside the file."""
        pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * size + _free_bytes(self.path.parent))

    def count_lost(self, pri: Priority) -> None:
        """A message the disk had no room for, even after evicting: counted like any drop."""
        self._count_drop(pri, 1)

    def evict_for(self, sizes: dict[Priority, int]) -> None:
        """While squeezed: make room for a batch (``sizes``: its bytes by priority) *before* its
        transaction, one small checkpointed transaction per chunk, so that the WAL never needs
        room for the deletes and the inserts at once. The room for a priority's messages is
        taken only from that priority and below, as in :meth:`append`."""
        if self.limit >= self.max_bytes:
            return
        for pri in sorted(sizes, reverse=True):
            self._evict(sum(n for p, n in sizes.items() if p >= pri), pri)

    def _evict(self, size: int, priority: Priority) -> None:
        while self.bytes + size > self.limit:
            victims = [p for p in sorted(Priority) if p <= priority and self._count[p]]
            if not victims:
                return
            needed = min(self.bytes + size - self.limit, _EVICT_CHUNK)
            with self.transaction():
                self._drop_oldest(victims[0], needed)

    def relax(self) -> None:
        """Space may be back: the configured bound again (the next full commit squeezes anew)."""
        self.limit = self.max_bytes

    def checkpoint(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:  # a full disk may refuse it; the next one may pass
            log.debug("outbox_checkpoint_failed", error=str(exc))

    def append(self, msg: Message) -> int | None:
        """Store ``msg``; return its id, or None when it was dropped to honour the bound."""
        if not self._make_room(msg.size, msg.priority):
            self._count_drop(msg.priority, 1)
            return None
        props = _props_json(msg)
        cur = self._db.execute(
            "INSERT INTO outbox (ts, priority, topic, payload, retain, props, size) VALUES (?,?,?,?,?,?,?)",
            (msg.ts, int(msg.priority), msg.topic, msg.payload, int(msg.retain), props, msg.size),
        )
        self._count[msg.priority] += 1
        self._bytes[msg.priority] += msg.size
        return cur.lastrowid

    def _make_room(self, size: int, priority: Priority) -> bool:
        """Drop lower (then equal) priority rows, oldest first, until ``size`` more bytes fit."""
        needed = self.bytes + size - self.limit
        if needed <= 0:
            return True
        if size > self.limit or sum(self._bytes[p] for p in Priority if p <= priority) < needed:
            return False
        for pri in sorted(p for p in Priority if p <= priority):
            while needed > 0 and self._count[pri]:
                needed -= self._drop_oldest(pri, needed)
        return True

    def _drop_oldest(self, pri: Priority, needed: int) -> int:
        rows = self._db.execute(
            "SELECT id, size FROM outbox WHERE priority = ? ORDER BY id LIMIT ?", (int(pri), _CHUNK)
        ).fetchall()
        victims, freed = [], 0
        for row_id, size in rows:
            if freed >= needed:
                break
            victims.append((row_id,))
            freed += size
        self._db.executemany("DELETE FROM outbox WHERE id = ?", victims)
        self._count[pri] -= len(victims)
        self._bytes[pri] -= freed
        self._count_drop(pri, len(victims))
        return freed

    def _count_drop(self, pri: Priority, n: int) -> None:
        if not n:
            return
        self.dropped[pri.label] += n
        now = time.monotonic()
        if now - self._drop_logged >= _DROP_LOG_EVERY_S:  # one line per burst, the counts say the rest
            self._drop_logged = now
            log.warning("outbox_full_dropping_lowest_priority", dropped=dict(self.dropped), limit=self.limit)
        if pri == Priority.DEFECT and now - self._defect_logged >= _DROP_LOG_EVERY_S:  # the last resort
            self._defect_logged = now
            log.error("outbox_defects_lost", total=self.dropped[pri.label], limit=self.limit)

    def delete(self, ids: Iterable[int]) -> None:
        """Forget acknowledged rows (ids already gone are ignored)."""
        pending = list(ids)
        for start in range(0, len(pending), _CHUNK):
            chunk = pending[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))  # no RETURNING: SQLite < 3.35 on older Pi OS
            found = self._db.execute(f"SELECT priority, size FROM outbox WHERE id IN ({marks})", chunk)
            for pri, size in found.fetchall():
                self._count[Priority(pri)] -= 1
                self._bytes[Priority(pri)] -= size
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows with an id above ``row_id``, oldest first (the replay order)."""
        cur = self._db.execute(
            "SELECT id, ts, priority, topic, payload, retain, props FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (row_id, limit),
        )
        return [_row(values) for values in cur]

    def get(self, row_id: int) -> Row | None:
        rows = self.after(row_id - 1, 1)
        return rows[0] if rows and rows[0].id == row_id else None

    def expire(self, now: float | None = None) -> int:
        """Drop rows older than ``max_age_s``; ids follow time, so the scan starts at the oldest."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        total = 0
        while True:
            rows = self._db.execute(
                "SELECT id, priority, size FROM outbox WHERE ts < ? ORDER BY id LIMIT ?", (cutoff, _CHUNK)
            ).fetchall()
            if not rows:
                break
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
            for _, pri, size in rows:
                self._count[Priority(pri)] -= 1
                self._bytes[Priority(pri)] -= size
                self.dropped[Priority(pri).label] += 1
            total += len(rows)
        if total:
            self.expired += total
            log.warning("outbox_messages_expired", count=total, max_age_s=self.max_age_s)
        return total

    def close(self) -> None:
        self._db.close()


def _free_bytes(directory: Path) -> int:
    try:
        st = os.statvfs(directory)
    except OSError:  # unknown: as if plenty (the commit itself will say when it is not)
        return 1 << 62
    return st.f_bavail * st.f_frsize


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Only a damaged file is set aside; "disk full", I/O and permission errors are not its fault."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in _CORRUPT or (code is None and "journal_mode" in str(exc))


def _props_json(msg: Message) -> str | None:
    if msg.content_type is None and not msg.user_properties:
        return None
    return json.dumps({"ct": msg.content_type, "up": msg.user_properties})


def _row(values: tuple[int, float, int, str, bytes, int, str | None]) -> Row:
    row_id, ts, pri, topic, payload, retain, props = values
    extra = json.loads(props) if props else {}
    msg = Message(
        topic=topic,
        payload=payload,
        qos=1,
        priority=Priority(pri),
        retain=bool(retain),
        content_type=extra.get("ct"),
        user_properties=tuple((k, v) for k, v in extra.get("up", ())),
        ts=ts,
    )
    return Row(row_id, msg)
