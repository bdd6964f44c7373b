"""Votes, consensus, adjudication and the audit trail, written to the collector index.

Every write is one transaction that first touches the sample's ``review`` row (an UPDATE: the
row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE serializes writers anyway), then reads the
votes, so two reviewers voting at the same instant are counted one after the other and the
consensus is decided once. A duplicate (sample, reviewer, round) is refused by the primary key.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.collector.index import Db, Index, IndexIntegrityError, SampleRow
from agent.collector.messages import safe_component, sample_key
from agent.collector.review.errors import Conflict, NotFound
from agent.collector.review.schema import INSERT_REVIEW, review_row

ACTIVE = ("label", "unsure")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a vote or a decision did; ``move`` is the file rename to do after the commit."""

    sample_id: str
    state: str
    label: str | None
    move: tuple[str, str] | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


def labeled_path(row: dict[str, Any], label: str) -> str:
    model, version = safe_component(row["model"]), safe_component(row["version"])
    return f"{model}/{version}/labeled/{safe_component(label)}/{row['id']}.jpg"


class ReviewStore:
    """The review tables behind a few methods; one index connection per thread."""

    def __init__(self, index_path: Path | str, votes_required: int) -> None:
        self.index_path = index_path
        self.votes_required = votes_required
        self._local = threading.local()
        self._all: list[Index] = []
        self._lock = threading.Lock()
        self._backfill()

    @property
    def index(self) -> Index:
        index: Index | None = getattr(self._local, "index", None)
        if index is None:
            index = Index(self.index_path)
            self._local.index = index
            with self._lock:
                self._all.append(index)
        return index

    def close(self) -> None:
        with self._lock:
            for index in self._all:
                index.close()
            self._all.clear()

    @contextmanager
    def _write(self, sample_id: str) -> Iterator[tuple[Db, dict[str, Any]]]:
        """A transaction holding the sample's review row; NotFound when there is no such sample."""
        with self.index.transaction() as db:
            db.execute("UPDATE review SET round = round WHERE id = ?", (sample_id,))
            row = _one(db, "SELECT s.*, r.state, r.round FROM samples s JOIN review r ON r.id = s.id "
                           "WHERE s.id = ?", (sample_id,))  # fmt: skip
            if row is None:
                raise NotFound(f"{sample_id}: no such sample")
            yield db, row

    def _backfill(self) -> None:
        """Samples stored before the review tables existed join the queue (labeled ones as labeled)."""
        missing = self.index.query("SELECT id FROM samples WHERE id NOT IN (SELECT id FROM review)")
        if not missing:
            return
        with self.index.transaction() as db:
            for (sample_id,) in missing:
                row = _one(db, "SELECT * FROM samples WHERE id = ?", (sample_id,))
                assert row is not None
                fields = {k: row[k] for k in SampleRow.__dataclass_fields__}
                sample = SampleRow(
                    **{**fields, "meta": json.loads(row["meta"]), "reasons": json.loads(row["reasons"])}
                )
                state = "open" if row["label"] is None else "labeled"
                db.execute(INSERT_REVIEW, review_row(sample, state))
                db.execute("UPDATE review SET label = ? WHERE id = ?", (row["label"], sample_id))

    # -- votes -------------------------------------------------------------------------------
    def vote(self, sample_id: str, reviewer: str, label: str | None, source: str) -> Outcome:
        """Record a label (or ``None``: unsure) and decide the consensus when enough have voted."""
        with self._write(sample_id) as (db, row):
            _must_be_open(row)
            rnd = row["round"]
            old = _one(db, "SELECT kind, label FROM votes WHERE sample_id=? AND reviewer=? AND round=?",
                       (sample_id, reviewer, rnd))  # fmt: skip
            if old is not None and old["kind"] in ACTIVE:
                raise Conflict(
                    f"{sample_id}: {reviewer} already voted {old['label'] or 'unsure'}; undo it first"
                )
            kind, ts = ("label" if label is not None else "unsure"), now_ms()
            if old is None:
                try:
                    db.execute("INSERT INTO votes VALUES (?,?,?,?,?,?,?)",
                               (sample_id, reviewer, rnd, kind, label, ts, source))  # fmt: skip
                except (sqlite3.IntegrityError, IndexIntegrityError) as exc:
                    raise Conflict(f"{sample_id}: {reviewer} already voted") from exc
            else:
                db.execute("UPDATE votes SET kind=?, label=?, ts=?, source=? "
                           "WHERE sample_id=? AND reviewer=? AND round=?",
                           (kind, label, ts, source, sample_id, reviewer, rnd))  # fmt: skip
            previous = old["kind"] if old is not None else None
            action = "vote" if label else "unsure"
            _audit(db, sample_id, reviewer, action, label=label, previous=previous, rnd=rnd, detail=source)
            if label is None:
                db.execute("UPDATE review SET unsure = unsure + 1 WHERE id = ?", (sample_id,))
                return Outcome(sample_id, "open", None)
            return self._decide(db, row)

    def _decide(self, db: Db, row: dict[str, Any]) -> Outcome:
        labels = [r[0] for r in db.execute(
            "SELECT label FROM votes WHERE sample_id=? AND round=? AND kind='label' ORDER BY ts, reviewer",
            (row["id"], row["round"]),
        )]  # fmt: skip
        if len(labels) < self.votes_required:
            return Outcome(row["id"], "open", None)
        if len(set(labels)) == 1:
            return self._label(
                db, row, labels[0], actor="consensus", action="labeled", detail=json.dumps(labels)
            )
        db.execute("UPDATE review SET state='disputed' WHERE id=?", (row["id"],))
        _audit(db, row["id"], "consensus", "disputed", rnd=row["round"], detail=json.dumps(labels))
        return Outcome(row["id"], "disputed", None)

    def _label(
        self, db: Db, row: dict[str, Any], label: str, *, actor: str, action: str, detail: str
    ) -> Outcome:
        new_path = labeled_path(row, label)
        ts = now_ms()
        db.execute("UPDATE review SET state='labeled', label=?, decided_by=?, decided_at=? WHERE id=?",
                   (label, actor, ts, row["id"]))  # fmt: skip
        db.execute("UPDATE samples SET label=?, path=? WHERE id=?", (label, new_path, row["id"]))
        db.execute("INSERT INTO history (id, ts, action, label, from_path, to_path) VALUES (?,?,?,?,?,?)",
                   (row["id"], ts, "labeled", label, row["path"], new_path))  # fmt: skip
        _audit(
            db, row["id"], actor, action, label=label, previous=row["label"], rnd=row["round"], detail=detail
        )
        move = (row["path"], new_path) if row["path"] != new_path else None
        return Outcome(row["id"], "labeled", label, move)

    def retract(self, sample_id: str, reviewer: str) -> Outcome:
        """Undo this reviewer's vote while the sample is still open (the row stays, marked retracted)."""
        with self._write(sample_id) as (db, row):
            _must_be_open(row)
            old = _one(db, "SELECT kind, label FROM votes WHERE sample_id=? AND reviewer=? AND round=?",
                       (sample_id, reviewer, row["round"]))  # fmt: skip
            if old is None or old["kind"] not in ACTIVE:
                raise Conflict(f"{sample_id}: {reviewer} has no vote to undo")
            db.execute("UPDATE votes SET kind='retracted', label=NULL, ts=? WHERE sample_id=? AND reviewer=? "
                       "AND round=?", (now_ms(), sample_id, reviewer, row["round"]))  # fmt: skip
            if old["kind"] == "unsure":
                db.execute("UPDATE review SET unsure = unsure - 1 WHERE id = ?", (sample_id,))
            _audit(db, sample_id, reviewer, "retract", previous=old["label"] or "unsure", rnd=row["round"])
            return Outcome(sample_id, "open", None)

    def adjudicate(self, sample_id: str, admin: str, label: str, source: str) -> Outcome:
        """An admin's decision: final for a disputed or open sample, a relabel for a labeled one."""
        with self._write(sample_id) as (db, row):
            votes = _all(db, "SELECT reviewer, kind, label FROM votes WHERE sample_id=? AND round=? "
                             "ORDER BY ts", (sample_id, row["round"]))  # fmt: skip
            detail = json.dumps({"source": source, "state": row["state"], "votes": votes})
            return self._label(db, row, label, actor=admin, action="adjudicated", detail=detail)

    def reopen(self, sample_id: str, admin: str, reason: str) -> Outcome:
        """A new round of votes for a labeled or disputed sample (an admin's call: the label looks
        wrong, the labeling guide changed). The earlier rounds' votes and decision stay in the
        votes table and the audit trail; the image goes back under ``unlabeled/``, and the sample
        leaves exports until a new consensus or an adjudication decides it again."""
        with self._write(sample_id) as (db, row):
            if row["state"] == "open":
                raise Conflict(f"{sample_id}: already open for review (round {row['round']})")
            rnd, ts = row["round"] + 1, now_ms()
            new_path = sample_key(json.loads(row["meta"]))
            db.execute("UPDATE review SET state='open', round=?, label=NULL, decided_by=NULL, "
                       "decided_at=NULL, unsure=0 WHERE id=?", (rnd, sample_id))  # fmt: skip
            db.execute("UPDATE samples SET label=NULL, path=? WHERE id=?", (new_path, sample_id))
            db.execute("INSERT INTO history (id, ts, action, label, from_path, to_path) VALUES (?,?,?,?,?,?)",
                       (sample_id, ts, "reopened", None, row["path"], new_path))  # fmt: skip
            _audit(db, sample_id, admin, "reopened", previous=row["label"], rnd=rnd, detail=reason)
            move = (row["path"], new_path) if row["path"] != new_path else None
            return Outcome(sample_id, "open", None, move)

    def mark_missing(self, sample_id: str) -> None:
        """Flag a sample whose image is not in storage (audited once)."""
        with self.index.transaction() as db:
            changed = db.execute(
                "UPDATE review SET missing=1 WHERE id=? AND missing=0", (sample_id,)
            ).rowcount
            if changed:
                _audit(db, sample_id, "collector", "image_missing", rnd=1)


def _must_be_open(row: dict[str, Any]) -> None:
    if row["state"] == "labeled":
        raise Conflict(f"{row['id']}: already labeled {row['label']}; only an admin can change it")
    if row["state"] == "disputed":
        raise Conflict(f"{row['id']}: the reviewers disagree; it waits for an admin's adjudication")


def _audit(
    db: Db, sample_id: str, actor: str, action: str, *, label: str | None = None,
    previous: str | None = None, rnd: int, detail: str | None = None,
) -> None:  # fmt: skip
    db.execute(
        "INSERT INTO audit (ts, sample_id, actor, action, label, previous, round, detail) "
        "VALUES (?,?,?,?,?,?,?,?)",
        (now_ms(), sample_id, actor, action, label, previous, rnd, detail),
    )


def _one(db: Db, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
    rows = _all(db, sql, args)
    return rows[0] if rows else None


def _all(db: Db, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = db.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
