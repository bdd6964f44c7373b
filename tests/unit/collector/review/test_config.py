"""The collector config's web: and review: sections: valid ones load, bad ones say where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.errors import ConfigError
from tests.unit.collector.conftest import write_config


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("web: {listen: 'nowhere'}\n", "web.listen: must be HOST:PORT"),
        ("web: {listen: '127.0.0.1:8080', colour: blue}\n", "web.colour"),
        ("review: {votes_required: 0}\n", "review.votes_required: must be between 1 and 9"),
        ("review: {labels: {demo: [ok, ok]}}\n", "review.labels.demo: must list distinct labels"),
    ],
)
def test_bad_web_and_review_sections_are_refused(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_collector_config(write_config(tmp_path, extra))


def test_web_and_review_sections(tmp_path: Path) -> None:
    text = "web: {listen: '0.0.0.0:9000'}\nreview: {votes_required: 3}\n"
    cfg = load_collector_config(write_config(tmp_path, text))
    assert cfg.web is not None and (cfg.web.host, cfg.web.port) == ("0.0.0.0", 9000)
    assert cfg.review.votes_required == 3 and load_collector_config(write_config(tmp_path)).web is None
