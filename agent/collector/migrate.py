"""``collector migrate --from A --to B``: copy a collector's dataset to other backends (local/SQLite ->
S3/PostgreSQL), resumable and verified.

Objects first, rows after: a row is never copied before its object is in the target, so an
interrupted migration leaves at most objects without rows, which the next run (or ``fsck``)
reconciles. Every object is checked by SHA-256 after writing (a read-back from the target); one
already there with the same checksum is skipped, which is what makes a rerun resume. Rows are
copied with their keys (``INSERT OR IGNORE``), so a rerun adds only what is missing.
Stop the source collector first: rows written during a migration are copied by the next run.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import TextIO

from agent.collector.config import CollectorConfig
from agent.collector.index import Index
from agent.collector.storage import Storage, StorageError, open_storage
from agent.errors import AgentError

# Table -> columns, in the order the rows must be copied (samples before what refers to them).
TABLES: dict[str, tuple[str, ...]] = {
    "samples": ("id", "ts", "received", "device", "site", "line", "model", "version", "predicted", "score",
                "label", "path", "bytes", "reasons", "meta"),
    "history": ("seq", "id", "ts", "action", "label", "from_path", "to_path"),
    "events": ("id", "ts", "received", "device", "site", "line", "model", "version", "label", "score"),
    "quarantine": ("seq", "received", "topic", "reason", "path"),
    "review": ("id", "state", "round", "priority", "flagged", "missing", "unsure", "label", "decided_by",
               "decided_at", "ts", "site", "line", "device", "model", "version", "predicted", "score",
               "reasons"),
    "votes": ("sample_id", "reviewer", "round", "kind", "label", "ts", "source"),
    "audit": ("seq", "ts", "sample_id", "actor", "action", "label", "previous", "round", "detail"),
}  # fmt: skip
_IDENTITY = ("history", "quarantine", "audit")
_CHUNK = 500


class MigrateError(AgentError):
    """An object's checksum differs after copying, or a backend refused."""


@dataclass(slots=True)
class MigrateReport:
    objects: int = 0
    copied: int = 0
    skipped: int = 0
    bytes: int = 0
    rows: int = 0


def migrate(source: CollectorConfig, target: CollectorConfig, out: TextIO = sys.stderr) -> MigrateReport:
    report = MigrateReport()
    src_store, dst_store = open_storage(source), open_storage(target)
    src_index, dst_index = Index(source.index_location), Index(target.index_location)
    try:
        skip = {f"{source.index_path.name}{s}" for s in ("", "-wal", "-shm", "-journal")}
        entries = [(k, size) for k, size, _ in src_store.entries() if k not in skip]
        total = sum(size for _, size in entries)
        for n, (key, _size) in enumerate(entries, 1):
            _copy_object(key, src_store, dst_store, report)
            if n % 200 == 0 or n == len(entries):
                out.write(
                    f"migrate: {n}/{len(entries)} objects, {report.bytes / 1e6:.1f}/{total / 1e6:.1f} MB\n"
                )
        for table, columns in TABLES.items():
            report.rows += _copy_rows(table, columns, src_index, dst_index)
            out.write(f"migrate: table {table} copied\n")
        if dst_index.kind == "postgresql":
            with dst_index.transaction() as db:
                for table in _IDENTITY:  # explicit seq values were inserted: move the identity past them
                    db.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), "
                        f"(SELECT coalesce(max(seq), 0) + 1 FROM {table}), false)"
                    )
    finally:
        for closable in (src_index, dst_index, src_store, dst_store):
            closable.close()
    return report


def _copy_object(key: str, src: Storage, dst: Storage, report: MigrateReport) -> None:
    data = src.read(key)
    digest = hashlib.sha256(data).digest()
    report.objects += 1
    report.bytes += len(data)
    if dst.exists(key) and hashlib.sha256(dst.read(key)).digest() == digest:
        report.skipped += 1  # copied by an earlier run
        return
    dst.write_batch([(key, data)])
    try:
        copied = dst.read(key)
    except StorageError as exc:
        raise MigrateError(f"{key}: not readable after copying: {exc}") from exc
    if hashlib.sha256(copied).digest() != digest:
        raise MigrateError(f"{key}: checksum differs after copying (source {digest.hex()[:16]})")
    report.copied += 1


def _copy_rows(table: str, columns: tuple[str, ...], src: Index, dst: Index) -> int:
    names = ", ".join(columns)
    marks = ",".join("?" * len(columns))
    rows = src.query(f"SELECT {names} FROM {table}")
    for i in range(0, len(rows), _CHUNK):
        with dst.transaction() as db:
            db.executemany(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", rows[i : i + _CHUNK])
    return len(rows)
