"""``inspection-agent collector --config PATH`` (run) and ``collector stats --config PATH [--since 1h]``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index
from agent.log import configure


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "collector", help="the central sample collector (run it, or report what it collected)"
    )
    p.add_argument(
        "action", nargs="?", choices=("run", "stats", "adduser"), default="run", help="default: run"
    )
    p.add_argument("name", nargs="?", help="adduser: the user name")
    p.add_argument("--config", required=True, help="the collector's YAML config")
    p.add_argument("--role", choices=("reviewer", "admin"), default="reviewer", help="adduser: the role")
    p.add_argument("--password-stdin", action="store_true", help="adduser: read the password from stdin")
    p.add_argument("--since", default="24h", help="stats: the period (30m, 1h, 7d; default 24h)")
    p.add_argument("--json", action="store_true", help="stats: print JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg = load_collector_config(args.config)
    if args.action == "stats":
        return stats(cfg, args.since, as_json=args.json)
    if args.action == "adduser":
        from agent.collector.review.users import adduser

        return adduser(cfg, args.name, args.role, from_stdin=args.password_stdin)
    return run(cfg)


def build(cfg: CollectorConfig) -> Any:
    """The collector's parts from its config (the collector's composition root)."""
    from agent.collector.ingest import Ingest
    from agent.collector.messages import Parser
    from agent.collector.service import Collector
    from agent.collector.storage import make_storage
    from agent.sdnotify import Notifier

    storage = make_storage(cfg.storage.backend, cfg.root)
    ingest = Ingest(Parser(cfg), storage, Index(cfg.index_path))
    return Collector(cfg, ingest, Notifier.from_env())


def run(cfg: CollectorConfig) -> int:
    configure(cfg.log.level, cfg.log.format, collector=cfg.broker.client_id)
    collector = build(cfg)
    if cfg.web is None:
        return int(collector.run())
    from agent.collector.review.web import ReviewServer

    with ReviewServer(cfg):  # the review app, beside ingest, stopped after it
        return int(collector.run())


def stats(cfg: CollectorConfig, since: str, *, as_json: bool) -> int:
    from agent.collector.report import format_report, parse_duration, stats_report

    seconds = parse_duration(since)
    index = Index(cfg.index_path)
    try:
        report = stats_report(index, seconds, accuracy=cfg.accuracy)
    finally:
        index.close()
    sys.stdout.write((json.dumps(report, indent=1) if as_json else format_report(report)) + "\n")
    return 0
