"""The collector's index: every sample's metadata, its label history, defect events, quarantine, reviews.

:class:`Index` is the one interface every part uses (ingest, fsck, dataset, review app, line
accuracy); behind it sits one of two backends, chosen by ``storage.index``:

- a path or ``sqlite:///path`` (the default, ``{root}/index.db``): :mod:`index_sqlite`, embedded;
- ``postgresql://…``: :mod:`index_pg` (psycopg 3, a connection pool, versioned migrations), shared
  by every collector of a shared-subscription group and by the review app.

SQL is written once, in SQLite's dialect with ``?`` placeholders; the PostgreSQL backend
translates placeholders and ``INSERT OR IGNORE``. Sample ids are primary keys, so an
at-least-once redelivery (to this collector or another one) is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from agent.collector.index_rows import (
    EVENT_MARKS,
    SAMPLE_MARKS,
    EventRow,
    IndexDbError,
    IndexFullError,
    IndexIntegrityError,
    IndexUnavailableError,
    QuarantineRow,
    SampleRow,
)

__all__ = [
    "EVENT_MARKS", "SAMPLE_MARKS", "Db", "EventRow", "Index", "IndexDbError", "IndexFullError",
    "IndexIntegrityError", "IndexUnavailableError", "QuarantineRow", "SampleRow", "is_postgres",
]  # fmt: skip


class Db(Protocol):
    """What a transaction hands out: a DB-API-like connection (``?`` placeholders on both backends)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...


class Backend(Protocol):
    kind: str
    where: str  # for messages: the file, or the server without its password

    def transaction(self) -> AbstractContextManager[Db]: ...

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def record(
        self,
        now: int,
        samples: Sequence[SampleRow],
        events: Sequence[EventRow],
        quarantined: Sequence[QuarantineRow],
    ) -> set[str]: ...

    def close(self) -> None: ...


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def _backend(location: str | Path) -> Backend:
    """The backend a location names; PostgreSQL's driver is imported only when it is used."""
    text = str(location)
    if is_postgres(text):
        from agent.collector.index_pg import PostgresBackend

        return PostgresBackend(text)
    if text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://")
        if not text.startswith("/"):
            raise IndexDbError(f"{location}: write sqlite:///absolute/path (three slashes) or a plain path")
    from agent.collector.index_sqlite import SqliteBackend

    return SqliteBackend(Path(text))


class Index:
    """One handle on the index. SQLite: one connection, for one thread; PostgreSQL: a small pool."""

    def __init__(self, location: str | Path) -> None:
        self._backend = _backend(location)
        self.kind = self._backend.kind
        self.where = self._backend.where

    def transaction(self) -> AbstractContextManager[Db]:
        """Every write goes through one: committed as a whole, or not at all."""
        return self._backend.transaction()

    def known(self, ids: Iterable[str], table: str = "samples") -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.query(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk))
        return found

    def record(
        self, samples: Sequence[SampleRow], events: Sequence[EventRow], quarantined: Sequence[QuarantineRow]
    ) -> set[str]:
        """Commit one batch; return the ids stored now (a row already there is a redelivery, ignored)."""
        return self._backend.record(int(time.time() * 1000), samples, events, quarantined)

    # -- dataset queries --------------------------------------------------------------------
    def sample(self, sample_id: str) -> dict[str, Any] | None:
        rows = self.dicts("SELECT * FROM samples WHERE id = ?", (sample_id,))
        return rows[0] if rows else None

    def dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as {column: value} (read-only)."""
        return self._backend.dicts(sql, args)

    def set_label(self, sample_id: str, label: str, old_path: str, new_path: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE samples SET label = ?, path = ? WHERE id = ?", (label, new_path, sample_id))
            db.execute(
                "INSERT INTO history (id, ts, action, label, from_path, to_path) VALUES (?,?,?,?,?,?)",
                (sample_id, int(time.time() * 1000), "labeled", label, old_path, new_path),
            )

    def history(self, sample_id: str) -> list[tuple[str, str | None, str | None]]:
        rows = self.query(
            "SELECT action, label, to_path FROM history WHERE id = ? ORDER BY seq", (sample_id,)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def labeled(self, model: str | None, version: str | None) -> list[tuple[str, str, str]]:
        """(id, label, path) of every labeled sample, optionally of one model/version, by id."""
        sql = "SELECT id, label, path FROM samples WHERE label IS NOT NULL"
        args: list[str] = []
        for column, value in (("model", model), ("version", version)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return [(r[0], r[1], r[2]) for r in self.query(sql + " ORDER BY id", args)]

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only reports (dataset stats, collector stats)."""
        return self._backend.query(sql, args)

    def close(self) -> None:
        self._backend.close()
