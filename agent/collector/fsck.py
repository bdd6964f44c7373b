"""``collector fsck``: reconcile the image files with the index rows, and optionally repair.

The collector writes a batch's files before its index rows, so a crash (or a bug, or a disk
error) between the two leaves files without rows; a file removed by hand leaves a row without
its file. Neither may pass silently: ``dataset export`` would miss or choke on them.

Found, and what ``--repair`` does (nothing is deleted except our own temporary files):

- ``orphan``: an image without a row -> moved to ``quarantine/fsck/`` with a quarantine row;
- ``missing``: a row whose file is gone -> the row moves to the quarantine (its metadata kept in
  ``quarantine/fsck/{id}.json``), a ``missing`` history entry is written;
- ``size``: a file whose size is not the recorded one -> file and row go to the quarantine;
- ``unindexed_quarantine``: a quarantined ``.bin`` without its row -> the row is added;
- ``temp``: a ``.name.tmp`` left by an interrupted write -> deleted.

Works on both storage backends (files under the root, or the objects of an S3 bucket) and both
index backends. Files younger than ``settle_s`` are skipped: a running collector may be between
writing a batch's files and committing its rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.collector.index import Index
from agent.collector.ingest import QUARANTINE
from agent.collector.storage import LocalStorage, Storage

FSCK_DIR = f"{QUARANTINE}/fsck"
KINDS = ("orphan", "missing", "size", "unindexed_quarantine", "temp")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # one of KINDS
    path: str  # relative to the storage root
    sample_id: str | None = None
    detail: str = ""

    def line(self) -> str:
        who = f" (sample {self.sample_id})" if self.sample_id else ""
        return f"{self.kind}: {self.path}{who}{': ' + self.detail if self.detail else ''}"


@dataclass(slots=True)
class FsckReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    repaired: int = 0

    def counts(self) -> dict[str, int]:
        return {kind: sum(f.kind == kind for f in self.findings) for kind in KINDS}

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "rows": self.rows,
            "problems": self.counts(),
            "repaired": self.repaired,
            "findings": [
                {"kind": f.kind, "path": f.path, "id": f.sample_id, "detail": f.detail} for f in self.findings
            ],
        }


def check(
    index: Index, store: Path | Storage, index_path: Path | None = None, settle_s: float = 60.0
) -> FsckReport:
    """Compare every stored file or object with the ``samples`` and ``quarantine`` rows.

    ``store`` is the storage backend (local or S3), or a local root directory.
    """
    storage = LocalStorage(store) if isinstance(store, Path) else store
    report = FsckReport()
    rows = {
        path: (sample_id, size)
        for sample_id, path, size in index.query("SELECT id, path, bytes FROM samples")
    }
    quarantined = {path for (path,) in index.query("SELECT path FROM quarantine")}
    report.rows = len(rows)
    name = index_path.name if index_path is not None else "index.db"
    skip = {name, f"{name}-wal", f"{name}-shm", f"{name}-journal"}
    seen: set[str] = set()
    newest = time.time() - settle_s
    try:
        for rel, size, mtime in storage.entries():
            if rel in skip:
                continue
            report.files += 1
            seen.add(rel)
            if mtime <= newest:  # younger: maybe a batch in flight
                _check_one(report, rel, size, rows, quarantined)
    finally:
        if isinstance(store, Path):
            storage.close()
    for rel, (sample_id, _size) in sorted(rows.items()):
        if rel not in seen:
            report.findings.append(Finding("missing", rel, sample_id, "the index row has no file"))
    return report


def _check_one(
    report: FsckReport, rel: str, size: int, rows: dict[str, tuple[str, int]], quarantined: set[str]
) -> None:
    name = rel.rsplit("/", 1)[-1]
    if name.startswith(".") and name.endswith(".tmp"):
        report.findings.append(Finding("temp", rel))
    elif rel.startswith(f"{QUARANTINE}/"):
        if rel.endswith(".bin") and rel not in quarantined:
            report.findings.append(Finding("unindexed_quarantine", rel))
    elif rel not in rows:
        report.findings.append(Finding("orphan", rel, detail="no index row"))
    elif rows[rel][1] != size:
        report.findings.append(
            Finding("size", rel, rows[rel][0], f"{size} bytes, the index says {rows[rel][1]}")
        )


def repair(report: FsckReport, index: Index, storage: Storage) -> None:
    """Apply the repairs listed in the module docstring; count them in ``report.repaired``."""
    now = int(time.time() * 1000)
    for finding in report.findings:
        if finding.kind == "temp":
            storage.delete(finding.path)
        elif finding.kind == "unindexed_quarantine":
            _quarantine_row(index, now, finding.path, "found by collector fsck without its index row")
        elif finding.kind == "orphan":
            target = f"{FSCK_DIR}/{finding.path}"
            storage.move(finding.path, target)
            _quarantine_row(index, now, target, f"image without an index row (was {finding.path})")
        else:  # missing, size: the row (and the file, if any) leave the dataset for the quarantine
            _retire_row(index, storage, now, finding)
        report.repaired += 1


def _retire_row(index: Index, storage: Storage, now: int, finding: Finding) -> None:
    row = index.sample(finding.sample_id or "")
    if row is None:
        return
    key = f"{FSCK_DIR}/{row['id']}"
    kept = f"{key}.json"  # what the quarantine row points at: the file when there is one
    if finding.kind == "size":
        kept = f"{key}.bin"
        storage.move(finding.path, kept)
    about = {"reason": finding.line(), "row": row}
    storage.write_batch([(f"{key}.json", json.dumps(about, default=str).encode())])
    with index.transaction() as db:
        db.execute("DELETE FROM samples WHERE id = ?", (row["id"],))
        db.execute(
            "INSERT INTO history (id, ts, action, label, from_path, to_path) VALUES (?,?,?,?,?,?)",
            (row["id"], now, finding.kind, row["label"], row["path"], f"{key}.json"),
        )
        db.execute(
            "INSERT INTO quarantine (received, topic, reason, path) VALUES (?,?,?,?)",
            (now, "fsck", finding.line(), kept),
        )


def _quarantine_row(index: Index, now: int, path: str, reason: str) -> None:
    with index.transaction() as db:
        db.execute(
            "INSERT INTO quarantine (received, topic, reason, path) VALUES (?,?,?,?)",
            (now, "fsck", reason, path),
        )
