"""The SQLite index backend (the embedded default): one file, one connection per :class:`Index`.

WAL with ``synchronous=FULL``: a committed batch survives a crash, and readers (``dataset``,
``collector stats``) never block the running collector. The schema is created with
``CREATE … IF NOT EXISTS`` (the same tables as the PostgreSQL backend's migration 1).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.collector.index_rows import (
    EVENT_MARKS,
    SAMPLE_MARKS,
    EventRow,
    IndexDbError,
    IndexFullError,
    IndexIntegrityError,
    QuarantineRow,
    SampleRow,
)
from agent.collector.review.schema import INSERT_REVIEW, REVIEW_SCHEMA, review_row

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
    if isinstance(exc, sqlite3.IntegrityError):
        return IndexIntegrityError(f"{what}: {exc}")
    return IndexDbError(f"{what}: {exc}")


class SqliteBackend:
    """One connection, used by one thread (the collector's writer, or a CLI command)."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
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

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._db.execute(sql, args)]
        except sqlite3.Error as exc:
            raise _translate(exc, f"index {self.path}", self.path) from exc

    def dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        except sqlite3.Error as exc:
            raise _translate(exc, f"index {self.path}", self.path) from exc

    def record(
        self,
        now: int,
        samples: Sequence[SampleRow],
        events: Sequence[EventRow],
        quarantined: Sequence[QuarantineRow],
    ) -> set[str]:
        with self.transaction() as db:
            inserted: set[str] = set()
            for s in samples:  # one statement per row: RETURNING tells which ids were new
                cur = db.execute(
                    f"INSERT OR IGNORE INTO samples VALUES ({SAMPLE_MARKS}) RETURNING id", s.values(now)
                )
                inserted.update(r[0] for r in cur.fetchall())
            new = [s for s in samples if s.id in inserted]
            db.executemany(
                "INSERT INTO history (id, ts, action, label, to_path) VALUES (?,?,?,?,?)",
                [(s.id, now, "received", s.predicted, s.path) for s in new],
            )
            db.executemany(INSERT_REVIEW, [review_row(s) for s in new])
            db.executemany(
                f"INSERT OR IGNORE INTO events VALUES ({EVENT_MARKS})", [e.values(now) for e in events]
            )
            db.executemany(
                "INSERT INTO quarantine (received, topic, reason, path) VALUES (?,?,?,?)",
                [(now, q.topic, q.reason, q.path) for q in quarantined],
            )
        return inserted

    def close(self) -> None:
        self._db.close()
