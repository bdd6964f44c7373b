"""A collector index with samples, three users, and the real review app on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index
from agent.collector.ingest import Ingest
from agent.collector.messages import Parser
from agent.collector.review.web import ReviewServer
from agent.collector.storage import make_storage
from agent.web.users import add_user
from tests.support.postgres import Postgres
from tests.support.webclient import WebClient
from tests.unit.collector.samples import jpeg, meta, v5

LABELS = ["ok", "scratch", "dent"]
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "boss": "boss-secret-333"}


def write_config(tmp_path: Path, votes_required: int = 2, index: str | None = None) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(
        f"storage: {{root: {tmp_path / 'store'}, index: {index or 'null'}}}\n"
        "web: {listen: '127.0.0.1:0', users_file: users.yaml, login_max_failures: 3}\n"
        f"review: {{votes_required: {votes_required}, page_size: 10, preload: 3}}\n"
    )
    return path


def ingest(cfg: CollectorConfig, n: int, *, start: int = 0, **extra: object) -> list[str]:
    """n samples of demo-defects over ok/scratch/dent with spread-out uncertainty; their ids."""
    storage, index = make_storage("local", cfg.root), Index(cfg.index_location)
    msgs, ids = [], []
    for i in range(start, start + n):
        data = jpeg(seed=i)
        top = 0.40 + 0.5 * ((i * 7919) % 100) / 100
        scores = {
            "ok": round(top, 4),
            "scratch": round((1 - top) * 0.7, 4),
            "dent": round((1 - top) * 0.3, 4),
        }
        doc = meta(data, label="ok", score=scores["ok"], scores=scores, frame=i, **extra)
        ids.append(doc["id"])
        msgs.append(v5(doc, data, mid=i + 1))
    Ingest(Parser(cfg), storage, index).process(msgs)
    index.close()
    storage.close()
    return ids


@dataclass
class ReviewApp:
    cfg: CollectorConfig
    ids: list[str]
    server: ReviewServer
    clients: list[WebClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, user: str | None = None) -> WebClient:
        c = WebClient(self.url)
        if user is not None:
            assert c.login(user, PASSWORDS[user]).status == 303
        return c

    def restart(self) -> None:
        self.server.stop()
        self.server = ReviewServer(self.cfg).start()
        for c in self.clients:
            c.base = self.url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def index_url(request: pytest.FixtureRequest) -> str | None:
    """Every review test on both index backends: the default SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: Postgres = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def review_factory(tmp_path: Path, index_url: str | None) -> Iterator[Callable[..., ReviewApp]]:
    apps: list[ReviewApp] = []

    def make(n: int = 20, votes_required: int = 2) -> ReviewApp:
        cfg = load_collector_config(write_config(tmp_path, votes_required, index_url))
        ids = ingest(cfg, n)
        users = cfg.resolve("users.yaml")
        for name, role in (("alice", "reviewer"), ("bob", "reviewer"), ("boss", "admin")):
            add_user(users, name, role, PASSWORDS[name], ("reviewer", "admin"))
        apps.append(ReviewApp(cfg, ids, ReviewServer(cfg).start()))
        return apps[-1]

    yield make
    for app in apps:
        app.server.stop()


@pytest.fixture
def review(review_factory: Callable[..., ReviewApp]) -> ReviewApp:
    return review_factory()
