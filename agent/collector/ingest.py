"""One batch of received messages -> files and index rows, durably, before anything is acknowledged.

Order of a batch: validate every message (bad ones become quarantine entries), drop the samples
already stored (redeliveries), write every file (fsync'd), commit the index rows in one
transaction. Only then may the caller acknowledge the batch's messages: a crash at any point
leaves them unacknowledged, and the broker delivers them again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from agent.collector.index import EventRow, Index, QuarantineRow
from agent.collector.messages import Incoming, Parser, Rejected, Sample
from agent.collector.storage import Storage
from agent.protocol.ids import new_id

log = structlog.get_logger(__name__)

QUARANTINE = "quarantine"


@dataclass(slots=True)
class Prepared:
    """A validated batch, ready to be written."""

    count: int = 0
    samples: dict[str, Sample] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)
    duplicates: int = 0


class Ingest:
    """Validates and stores batches; keeps the counters the collector reports."""

    def __init__(self, parser: Parser, storage: Storage, index: Index) -> None:
        self.parser = parser
        self.storage = storage
        self.index = index
        self.counts: Counter[str] = Counter()

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
        """Write and record a prepared batch; batches must be committed in the order they arrived."""
        known = self.index.known(batch.samples)
        fresh = [s for sample_id, s in batch.samples.items() if sample_id not in known]
        batch.duplicates += len(batch.samples) - len(fresh)
        self.storage.write_batch([(s.row.path, s.jpeg) for s in fresh] + batch.files)
        self.index.record([s.row for s in fresh], batch.events, batch.quarantined)
        c = self.counts
        c["received"] += batch.count
        c["stored"] += len(fresh)
        c["duplicates"] += batch.duplicates
        c["events"] += len(batch.events)
        c["quarantined"] += len(batch.quarantined)

    def _sort(self, msg: Incoming, batch: Prepared) -> None:
        try:
            if self.parser.kind(msg.topic) == "sample":
                sample = self.parser.sample(msg)
                if sample.row.id in batch.samples:
                    batch.duplicates += 1
                batch.samples[sample.row.id] = sample
            else:
                batch.events.append(self.parser.defect(msg))
        except Rejected as exc:
            self._quarantine(msg, str(exc), batch)

    def _quarantine(self, msg: Incoming, reason: str, batch: Prepared) -> None:
        """The message as received (``.bin``) and why (``.json``), under quarantine/{day}/."""
        key = f"{QUARANTINE}/{time.strftime('%Y%m%d', time.gmtime())}/{new_id()}"
        about = {
            "reason": reason,
            "topic": msg.topic,
            "content_type": msg.content_type,
            "meta": (msg.meta or "")[:65536] or None,
            "bytes": len(msg.payload),
            "received": int(time.time() * 1000),
        }
        limit = self.parser.cfg.limits.max_bytes  # an oversized message is kept truncated, not whole
        about["truncated"] = len(msg.payload) > limit
        batch.files += [(f"{key}.bin", msg.payload[:limit]), (f"{key}.json", json.dumps(about).encode())]
        batch.quarantined.append(QuarantineRow(msg.topic, reason, f"{key}.bin"))
        log.warning("message_quarantined", topic=msg.topic, reason=reason)
