"""Review actions as the web app, the JSON API and ``dataset label`` all perform them.

One code path: validate the label against the sample's model, write the vote (or decision) in
one index transaction, then move the image to ``labeled/{label}``. The index is the truth: when
a move is interrupted, :meth:`ReviewService.locate` finds the file where it was and finishes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from agent.collector.index import Index
from agent.collector.messages import safe_component
from agent.collector.review import queries
from agent.collector.review.config import ReviewConfig
from agent.collector.review.errors import BadLabel, NotFound, ReviewError
from agent.collector.review.queries import Filters
from agent.collector.review.store import Outcome, ReviewStore
from agent.collector.storage import Storage, StorageError

log = structlog.get_logger(__name__)


class ImageMissing(NotFound):
    """The sample is in the index but its image is not in storage."""


class ReviewService:
    def __init__(self, store: ReviewStore, storage: Storage, cfg: ReviewConfig) -> None:
        self.store = store
        self.storage = storage
        self.cfg = cfg

    @classmethod
    def open(cls, index_path: Path | str, storage: Storage, cfg: ReviewConfig) -> ReviewService:
        return cls(ReviewStore(index_path, cfg.votes_required), storage, cfg)

    @property
    def index(self) -> Index:
        return self.store.index

    def close(self) -> None:
        self.store.close()

    # -- reading ---------------------------------------------------------------------------
    def sample(self, sample_id: str) -> dict[str, Any]:
        row = queries.sample(self.index, sample_id)
        if row is None:
            raise NotFound(f"{sample_id}: no such sample")
        row["labels"] = self.labels(row)
        return row

    def labels(self, row: dict[str, Any]) -> list[str]:
        """The model's labels in order: configured, else the keys of the sample's raw scores."""
        configured = self.cfg.labels.get(row["model"])
        if configured:
            return list(configured)
        labels = list((row.get("meta") or {}).get("scores") or {})
        return labels if row["predicted"] in labels else [*labels, row["predicted"]]

    def detail(self, sample_id: str, user: str, admin: bool) -> dict[str, Any]:
        """The sample for one user: others' votes and the trail only once this user may see them."""
        row = self.sample(sample_id)
        mine = queries.my_vote(self.index, sample_id, user, row["round"])
        row["my_vote"] = mine if mine and mine["kind"] != "retracted" else None
        visible = admin or row["state"] != "open" or row["my_vote"] is not None
        row["votes"] = queries.votes(self.index, sample_id) if visible else None
        row["audit"] = queries.audit(self.index, sample_id) if visible else None
        row.pop("path")
        return row

    def queue(
        self, reviewer: str | None, filters: Filters, after: str | None, limit: int, state: str = "open"
    ) -> list[dict[str, Any]]:
        return queries.queue(self.index, reviewer, filters, after=after, limit=limit, state=state)

    def remaining(self, reviewer: str | None, filters: Filters) -> int:
        return queries.remaining(self.index, reviewer, filters)

    def image(self, sample_id: str) -> bytes:
        row = self.sample(sample_id)
        key = self.locate(row)
        if key is None:
            self.store.mark_missing(sample_id)
            log.warning("sample_image_missing", id=sample_id, path=row["path"])
            raise ImageMissing(f"{sample_id}: image {row['path']} is missing from storage")
        return self.storage.read(key)

    def locate(self, row: dict[str, Any]) -> str | None:
        """Where the image is: its recorded path, else where it was before (a move then finished)."""
        if self.storage.exists(row["path"]):
            return str(row["path"])
        earlier = [
            r[0]
            for r in self.index.query(
                "SELECT from_path FROM history WHERE id = ? AND from_path IS NOT NULL ORDER BY seq DESC",
                [row["id"]],
            )
        ]
        for key in earlier:
            if key and self.storage.exists(key):
                try:
                    self.storage.move(key, row["path"])
                except StorageError:
                    return str(key)
                log.info("sample_move_finished", id=row["id"], path=row["path"])
                return str(row["path"])
        return None

    # -- writing ---------------------------------------------------------------------------
    def vote(self, sample_id: str, reviewer: str, label: str | None, source: str) -> Outcome:
        """A label vote, or ``label=None`` for "unsure"."""
        if label is not None:
            self._check_label(self.sample(sample_id), label)
        return self._settle(self.store.vote(sample_id, reviewer, label, source))

    def retract(self, sample_id: str, reviewer: str) -> Outcome:
        return self.store.retract(sample_id, reviewer)

    def adjudicate(self, sample_id: str, admin: str, label: str, source: str) -> Outcome:
        self._check_label(self.sample(sample_id), label)
        return self._settle(self.store.adjudicate(sample_id, admin, label, source))

    def reopen(self, sample_id: str, admin: str, reason: str) -> Outcome:
        """Send a decided sample back to the reviewers for a new round (see ReviewStore.reopen)."""
        reason = " ".join(reason.split())
        if not reason or len(reason) > 500:
            raise ReviewError(f"{sample_id}: say why it is reopened (1 to 500 characters), for the audit")
        return self._settle(self.store.reopen(sample_id, admin, reason))

    def _check_label(self, row: dict[str, Any], label: str) -> None:
        labels = self.labels(row)
        if label not in labels or safe_component(label) != label:
            raise BadLabel(f"{row['id']}: {label!r} is not a label of {row['model']} ({', '.join(labels)})")

    def _settle(self, outcome: Outcome) -> Outcome:
        """Move the image of a newly labeled sample; a failed move is finished by locate() later."""
        if outcome.move is None:
            return outcome
        src, dst = outcome.move
        try:
            if self.storage.exists(src):
                self.storage.move(src, dst)
            elif not self.storage.exists(dst):
                self.store.mark_missing(outcome.sample_id)
        except StorageError as exc:
            log.warning("sample_move_failed", id=outcome.sample_id, error=str(exc))
        return outcome
