"""One batch of received messages -> files and index rows, durably, before anything is acknowledged.

Order of a batch: validate every message (bad ones become quarantine entries), drop the samples
already stored (redeliveries), write every file (fsync'd), commit the index rows in one
transaction. Only then may the caller acknowledge the batch's messages: a crash at any point
leaves them unacknowledged, and the broker delivers them again.

Everything that can fail because of one message happens in :meth:`Ingest.prepare`, under a
per-message error boundary: schema, image and the SQLite bind itself (rehearsed on an in-memory
database). So :meth:`Ingest.commit` can only fail for reasons that concern every message (the disk,
the database), and the collector may treat such a failure as fatal, or wait when the disk is full.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import structlog

from agent.collector.index import EVENT_MARKS, SAMPLE_MARKS, EventRow, Index, QuarantineRow
from agent.collector.messages import Incoming, Parser, Rejected, Sample
from agent.collector.storage import Storage, StorageError, StorageUnavailableError
from agent.errors import first_line
from agent.protocol.ids import new_id
from agent.protocol.wire import CONTENT_TYPE

log = structlog.get_logger(__name__)

QUARANTINE = "quarantine"


@dataclass(slots=True)
class Prepared:
    """A validated batch, ready to be written (committing it twice writes the same files)."""

    count: int = 0
    samples: dict[str, Sample] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)
    duplicates: int = 0
    conflicts: int = 0
    in_place: set[str] = field(default_factory=set)  # presigned uploads: the object is already stored


@dataclass(slots=True)
class _Plan:
    """What one commit writes: new samples, and conflicting redeliveries sent to quarantine."""

    fresh: list[Sample] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)
    duplicates: int = 0
    conflicts: int = 0
    replaced: int = 0  # unnoticed presigned uploads replaced by their fallback's image


@dataclass(frozen=True, slots=True)
class Stored:
    """A batch whose objects are stored: what :meth:`Ingest.record` commits."""

    plan: _Plan


class Ingest:
    """Validates and stores batches; keeps the counters the collector reports."""

    def __init__(self, parser: Parser, storage: Storage, index: Index) -> None:
        self.parser = parser
        self.storage = storage
        self.index = index
        self.counts: Counter[str] = Counter()
        self._rehearsal = sqlite3.connect(":memory:", check_same_thread=False)

    def process(self, messages: Sequence[Incoming]) -> None:
        """Make every message of the batch durable (stored, recorded or quarantined).

        Raises a StorageError/IndexDbError when the disk refuses: nothing may then be acknowledged.
        """
        self.commit(self.prepare(messages))

    def prepare(self, messages: Sequence[Incoming]) -> Prepared:
        """Validate a batch (CPU only: the collector runs it while the previous batch is fsync'd)."""
        batch = Prepared(count=len(messages))
        for msg in messages:
            self._sort(msg, batch)
        return batch

    def commit(self, batch: Prepared) -> None:
        """Write and record a prepared batch; batches must be committed in the order they arrived.

        Safe to call again after a StorageError/IndexDbError (the collector retries on a full disk):
        it writes the same files and commits the rows once.
        """
        self.record(batch, self.store(batch))

    def store(self, batch: Prepared) -> Stored:
        """The first half of :meth:`commit`: the batch's objects, durably stored; no row yet.

        The collector stores the next batch while the previous one's rows are committed, only
        when no sample id is in both (:attr:`Prepared.samples`): the plan reads the index, and
        must not miss a row that the other batch is about to commit. Safe to call again."""
        plan = self._plan(batch)
        fresh = [(s.row.path, s.jpeg) for s in plan.fresh if s.row.id not in batch.in_place]
        taken = self.storage.create_batch(fresh)
        if taken:
            self._settle(plan, taken)
        self.storage.write_batch(batch.files + plan.files)
        return Stored(plan)

    def record(self, batch: Prepared, stored: Stored) -> int:
        """The second half of :meth:`commit`: the rows, in one transaction; how many samples it
        stored. Safe to call again."""
        plan = stored.plan
        rows = self.index.record(
            [s.row for s in plan.fresh], batch.events, batch.quarantined + plan.quarantined
        )
        lost = [s for s in plan.fresh if s.row.id not in rows]  # another collector's row won
        raced = self._lost_race(lost, plan, batch.in_place) if lost else 0
        c = self.counts
        c["received"] += batch.count
        c["stored"] += len(rows)
        c["duplicates"] += batch.duplicates + plan.duplicates + raced
        c["conflicts"] += batch.conflicts + plan.conflicts
        c["uploads_replaced"] += plan.replaced
        c["events"] += len(batch.events)
        c["quarantined"] += len(batch.quarantined) + len(plan.quarantined)
        return len(rows)

    def _plan(self, batch: Prepared) -> _Plan:
        """Samples already stored are redeliveries when their image is the same, conflicts otherwise."""
        plan = _Plan()
        known = self.index.known(batch.samples)
        for sample_id, sample in batch.samples.items():
            if sample_id not in known:
                plan.fresh.append(sample)
            elif self._stored_image(sample_id) in (sample.jpeg, None):
                plan.duplicates += 1
            else:
                self._conflict(plan, sample)
        return plan

    def _settle(self, plan: _Plan, taken: set[str]) -> None:
        """Objects whose key was taken when this batch created them: another collector (or an
        earlier attempt of this batch) stored that id first. The same image is a redelivery, the
        index's unique id decides which row stays; a different image is a conflict, and the first
        stored copy stays (never overwritten), as with a redelivery that conflicts.

        One exception: a sample sent after a failed presigned upload (``upload: fallback``) whose
        id has no row. Its PUT can have landed while the agent saw a timeout; the object under its
        key is then the device's own full-resolution copy, which no row points at, and the image
        that came with the metadata replaces it (ids are 128-bit ULIDs: no other device's)."""
        keep: list[Sample] = []
        for sample in plan.fresh:
            if sample.row.path not in taken:
                keep.append(sample)
                continue
            stored = self.storage.read(sample.row.path)  # a StorageError: retried, unacknowledged
            if stored == sample.jpeg:
                keep.append(sample)
            elif sample.message.fallback:
                plan.files.append((sample.row.path, sample.jpeg))  # written over it, row committed after
                keep.append(sample)
                plan.replaced += 1
                log.info("presigned_upload_replaced", id=sample.row.id, path=sample.row.path)
            else:
                self._conflict(plan, sample)
        plan.fresh = keep

    def _lost_race(self, lost: list[Sample], plan: _Plan, in_place: set[str]) -> int:
        """Samples whose row another collector committed first: the same image is a redelivery;
        a different one is quarantined. An object this batch created under another key (the
        winner's metadata named another label, so another path) is removed: no row points at it.
        Returns how many were redeliveries. (Killed before this finishes: the message is
        redelivered, and the plan sees the id stored and decides the same.)"""
        conflicts = _Plan()
        for sample in lost:
            row = self.index.sample(sample.row.id)
            winner = None if row is None else row["path"]
            if winner != sample.row.path and sample.row.id not in in_place:
                self.storage.delete(sample.row.path)
            if winner is not None and self._read(winner) not in (sample.jpeg, None):
                self._conflict(conflicts, sample)
        if conflicts.conflicts:
            self.storage.write_batch(conflicts.files)
            self.index.record([], [], conflicts.quarantined)
            plan.conflicts += conflicts.conflicts
            plan.quarantined += conflicts.quarantined
        return len(lost) - conflicts.conflicts

    def _read(self, key: str) -> bytes | None:
        try:
            return self.storage.read(key)
        except StorageUnavailableError:
            raise
        except StorageError:
            return None

    def _conflict(self, plan: _Plan, sample: Sample) -> None:
        """Quarantine a sample whose id is already stored with a different image."""
        sample_id = sample.row.id
        plan.conflicts += 1
        digest = hashlib.sha256(sample.jpeg).hexdigest()[:12]
        key = f"{QUARANTINE}/{_day()}/{sample_id}-conflict-{digest}"
        reason = f"sample id {sample_id} is already stored with a different image"
        plan.files += _quarantine_files(key, sample.message, reason, self.parser.cfg.limits.max_bytes)
        plan.quarantined.append(QuarantineRow(sample.message.topic, reason, f"{key}.bin"))
        log.warning("sample_conflict", id=sample_id, topic=sample.message.topic)

    def _stored_image(self, sample_id: str) -> bytes | None:
        """The stored image of a known sample; None when its file is gone (fsck reports that)."""
        row = self.index.sample(sample_id)
        return None if row is None else self._read(row["path"])

    def _sort(self, msg: Incoming, batch: Prepared) -> None:
        """The per-message error boundary: whatever goes wrong with one message quarantines it alone."""
        try:
            if self.parser.kind(msg.topic) == "sample":
                if msg.uploaded:
                    msg = self._fetch_uploaded(msg, batch)
                self._add_sample(self.parser.sample(msg), batch)
            else:
                event = self.parser.defect(msg)
                self._rehearse(EVENT_MARKS, event.values(0))
                batch.events.append(event)
        except Rejected as exc:
            self._quarantine(msg, str(exc), batch)
        except StorageUnavailableError:
            raise  # not this message's fault: the collector stops unacknowledged, and is restarted
        except Exception as exc:  # a bug must cost one message, never the collector
            log.exception("message_failed", topic=msg.topic)
            self._quarantine(msg, f"internal error: {type(exc).__name__}: {first_line(exc)[:160]}", batch)

    def _fetch_uploaded(self, msg: Incoming, batch: Prepared) -> Incoming:
        """A metadata-only sample: its JPEG, PUT by the device, read back to be validated like any."""
        sample_id, key = self.parser.upload_key(msg.topic, (msg.meta or "").encode())
        try:
            data = self.storage.read(key)
        except StorageUnavailableError:
            raise
        except StorageError as exc:
            raise Rejected(f"presigned upload of {sample_id} is not in storage ({key})") from exc
        batch.in_place.add(sample_id)
        return replace(msg, payload=data, content_type=CONTENT_TYPE)

    def _add_sample(self, sample: Sample, batch: Prepared) -> None:
        self._rehearse(SAMPLE_MARKS, sample.row.values(0))
        earlier = batch.samples.get(sample.row.id)
        if earlier is None:
            batch.samples[sample.row.id] = sample
        elif earlier.jpeg == sample.jpeg:
            batch.duplicates += 1
        else:
            batch.conflicts += 1
            raise Rejected(f"sample id {sample.row.id} came twice in one batch with different images")

    def _rehearse(self, marks: str, values: tuple[object, ...]) -> None:
        """Bind the row as the index will, so an unbindable value fails here, for this message only."""
        try:
            self._rehearsal.execute(f"SELECT {marks}", values)
            if any(isinstance(v, str) and "\0" in v for v in values):
                raise ValueError("a NUL character (PostgreSQL text cannot hold one)")
        except (sqlite3.Error, OverflowError, ValueError, TypeError) as exc:
            raise Rejected(f"cannot be stored: {type(exc).__name__}: {first_line(exc)[:120]}") from exc

    def _quarantine(self, msg: Incoming, reason: str, batch: Prepared) -> None:
        """The message as received (``.bin``) and why (``.json``), under quarantine/{day}/."""
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        key = f"{QUARANTINE}/{_day()}/{new_id()}"
        batch.files += _quarantine_files(key, msg, reason, self.parser.cfg.limits.max_bytes)
        batch.quarantined.append(QuarantineRow(msg.topic, reason, f"{key}.bin"))
        log.warning("message_quarantined", topic=msg.topic, reason=reason)


def _day() -> str:
    return time.strftime("%Y%m%d", time.gmtime())


def _quarantine_files(key: str, msg: Incoming, reason: str, limit: int) -> list[tuple[str, bytes]]:
    """``key.bin`` (the payload, truncated beyond ``limit``) and ``key.json`` (why, and the metadata)."""
    about = {
        "reason": reason,
        "topic": msg.topic,
        "content_type": msg.content_type,
        "meta": (msg.meta or "")[:65536] or None,
        "bytes": len(msg.payload),
        "received": int(time.time() * 1000),
        "truncated": len(msg.payload) > limit,
    }
    return [(f"{key}.bin", msg.payload[:limit]), (f"{key}.json", json.dumps(about).encode())]
