"""The collector's SQLite index: every sample's metadata, its label history, defect events, quarantine.

WAL with ``synchronous=FULL``: a committed batch survives a crash, and readers (``dataset``,
``collector stats``) never block the running collector. Sample ids are primary keys, so an
at-least-once redelivery is stored once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.collector.review.schema import INSERT_REVIEW, REVIEW_SCHEMA, review_row
from agent.errors import AgentError

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS samples (
    id TEXT PRIMARY KEY, ts INTEGER NOT NULL, received INTEGER NOT NULL,
    device TEXT NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL,
    model TEXT NOT NULL, version TEXT NOT NULL, predicted TEXT NOT NULL, score REAL,
    label TEXT, path TEXT NOT NULL, bytes INTEGER NOT NULL, reasons TEXT NOT NULL, meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_model ON samples (model, version, label);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, ts INTEGER NOT NULL, action TEXT NOT NULL,
    label TEXT, from_path TEXT, to_path TEXT
);
CREATE INDEX IF NOT EXISTS history_id ON history (id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, ts INTEGER NOT NULL, received INTEGER NOT NULL,
    device TEXT NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL,
    model TEXT, version TEXT, label TEXT NOT NULL, score REAL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, received INTEGER NOT NULL, topic TEXT NOT NULL,
    reason TEXT NOT NULL, path TEXT NOT NULL
);
"""
    + REVIEW_SCHEMA
)

_SQLITE_FULL = 13  # the primary result code (typeshed lacks sqlite3.SQLITE_FULL)
_NEARLY_FULL = 64 * 1024
SAMPLE_MARKS = "?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?"
EVENT_MARKS = "?,?,?,?,?,?,?,?,?,?"


class IndexDbError(AgentError):
    """The index database cannot be opened or written."""


class IndexFullError(IndexDbError):
    """SQLITE_FULL: the disk is full. Never corruption: the collector waits for space and retries."""


def _translate(exc: sqlite3.Error, what: str, path: Path) -> IndexDbError:
    """SQLITE_FULL, or an I/O error on a filesystem without free space (creating the WAL's -shm
    file on a full disk says "disk I/O error"), is a full disk; anything else an index error."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11; the message otherwise
    full = (code is not None and code & 0xFF == _SQLITE_FULL) or "disk is full" in str(exc)
    if not full and "I/O error" in str(exc):
        try:
            st = os.statvfs(path.parent)
            full = st.f_bavail * st.f_frsize < _NEARLY_FULL
        except OSError:
            pass
    if full:
        return IndexFullError(f"{what}: disk full ({exc})")
    return IndexDbError(f"{what}: {exc}")


@dataclass(frozen=True, slots=True)
class SampleRow:
    id: str
    ts: int
    device: str
    site: str
    line: str
    model: str
    version: str
    predicted: str
    score: float
    path: str
    bytes: int
    reasons: Sequence[str]
    meta: dict[str, Any]

    def values(self, received: int) -> tuple[Any, ...]:
        """The ``samples`` row as bound by :meth:`Index.record` (the collector rehearses the bind)."""
        return (
            self.id, self.ts, received, self.device, self.site, self.line, self.model, self.version,
            self.predicted, self.score, self.path, self.bytes, json.dumps(list(self.reasons)),
            json.dumps(self.meta, separators=(",", ":")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    ts: int
    device: str
    site: str
    line: str
    model: str | None
    version: str | None
    label: str
    score: float | None

    def values(self, received: int) -> tuple[Any, ...]:
        """The ``events`` row as bound by :meth:`Index.record`."""
        return (
            self.id, self.ts, received, self.device, self.site, self.line, self.model, self.version,
            self.label, self.score,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    topic: str
    reason: str
    path: str


class Index:
    """One connection, used by one thread (the collector's writer, or a CLI command)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise _translate(exc, f"cannot open the index {path}", path) from exc
        except OSError as exc:
            raise IndexDbError(f"cannot open the index {path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc, f"index {self.path}", self.path) from exc

    def known(self, ids: Iterable[str], table: str = "samples") -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._db.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk)
                found.update(r[0] for r in rows)
            except sqlite3.Error as exc:
                raise _translate(exc, f"index {self.path}", self.path) from exc
        return found

    def record(
        self, samples: Sequence[SampleRow], events: Sequence[EventRow], quarantined: Sequence[QuarantineRow]
    ) -> None:
        """Commit one batch; a row whose id is already there is ignored (redelivery)."""
        now = int(time.time() * 1000)
        with self.transaction() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO samples VALUES ({SAMPLE_MARKS})", [s.values(now) for s in samples]
            )
            db.executemany(
                "INSERT INTO history (id, ts, action, label, to_path) VALUES (?,?,?,?,?)",
                [(s.id, now, "received", s.predicted, s.path) for s in samples],
            )
            db.executemany(INSERT_REVIEW, [review_row(s) for s in samples])
            db.executemany(
                f"INSERT OR IGNORE INTO events VALUES ({EVENT_MARKS})", [e.values(now) for e in events]
            )
            db.executemany(
                "INSERT INTO quarantine (received, topic, reason, path) VALUES (?,?,?,?)",
                [(now, q.topic, q.reason, q.path) for q in quarantined],
            )

    # -- dataset queries --------------------------------------------------------------------
    def sample(self, sample_id: str) -> dict[str, Any] | None:
        self._db.row_factory = sqlite3.Row
        try:
            row = self._db.execute("SELECT * FROM samples WHERE id = ?", (sample_id,)).fetchone()
        finally:
            self._db.row_factory = None
        return dict(row) if row is not None else None

    def set_label(self, sample_id: str, label: str, old_path: str, new_path: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE samples SET label = ?, path = ? WHERE id = ?", (label, new_path, sample_id))
            db.execute(
                "INSERT INTO history (id, ts, action, label, from_path, to_path) VALUES (?,?,?,?,?,?)",
                (sample_id, int(time.time() * 1000), "labeled", label, old_path, new_path),
            )

    def history(self, sample_id: str) -> list[tuple[str, str | None, str | None]]:
        rows = self._db.execute(
            "SELECT action, label, to_path FROM history WHERE id = ? ORDER BY seq", (sample_id,)
        )
        return [tuple(r) for r in rows]

    def labeled(self, model: str | None, version: str | None) -> list[tuple[str, str, str]]:
        """(id, label, path) of every labeled sample, optionally of one model/version, by id."""
        sql = "SELECT id, label, path FROM samples WHERE label IS NOT NULL"
        args: list[str] = []
        for column, value in (("model", model), ("version", version)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return [tuple(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only reports (dataset stats, collector stats)."""
        return [tuple(r) for r in self._db.execute(sql, args)]

    def close(self) -> None:
        self._db.close()
