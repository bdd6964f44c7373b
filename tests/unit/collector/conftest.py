"""A collector config, parser, storage and index on a temporary directory (all real)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index
from agent.collector.ingest import Ingest
from agent.collector.messages import Parser
from agent.collector.review.service import ReviewService
from agent.collector.storage import LocalStorage, make_storage


@dataclass
class Parts:
    cfg: CollectorConfig
    storage: LocalStorage
    index: Index
    ingest: Ingest
    review: ReviewService


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(
        f"storage: {{root: {tmp_path / 'store'}}}\ndevices: {{allowed_prefixes: [cam-]}}\n{extra}"
    )
    return path


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    cfg = load_collector_config(write_config(tmp_path, "limits: {max_bytes: 300000}\n"))
    storage = make_storage("local", cfg.root)
    index = Index(cfg.index_path)
    review = ReviewService.open(cfg.index_path, storage, cfg.review)
    yield Parts(cfg, storage, index, Ingest(Parser(cfg), storage, index), review)
    review.close()
    index.close()
    storage.close()
