"""``inspection-agent collector --config PATH`` (run), ``collector stats``, ``collector fsck [--repair]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index, IndexFullError
from agent.errors import ConfigError
from agent.log import configure
from agent.sdnotify import Notifier

log = structlog.get_logger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "collector", help="the central sample collector (run it, or report what it collected)"
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "stats", "adduser", "fsck", "migrate"),
        default="run",
        help="default: run",
    )
    p.add_argument("name", nargs="?", help="adduser: the user name")
    p.add_argument("--config", help="the collector's YAML config (every action but migrate)")
    p.add_argument("--from", dest="source", help="migrate: the config of the collector to copy from")
    p.add_argument("--to", dest="target", help="migrate: the config of the new backends (S3, PostgreSQL)")
    p.add_argument("--role", choices=("reviewer", "admin"), default="reviewer", help="adduser: the role")
    p.add_argument("--password-stdin", action="store_true", help="adduser: read the password from stdin")
    p.add_argument("--since", default="24h", help="stats: the period (30m, 1h, 7d; default 24h)")
    p.add_argument("--json", action="store_true", help="stats, fsck: print JSON")
    p.add_argument(
        "--repair",
        action="store_true",
        help="fsck: quarantine what does not match (stop the collector first)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.action == "migrate":
        return migrate(args.source, args.target)
    if not args.config:
        raise ConfigError(f"collector {args.action}: --config is required")
    cfg = load_collector_config(args.config)
    if args.action == "stats":
        return stats(cfg, args.since, as_json=args.json)
    if args.action == "adduser":
        from agent.collector.review.users import adduser

        return adduser(cfg, args.name, args.role, from_stdin=args.password_stdin)
    if args.action == "fsck":
        return fsck(cfg, repair=args.repair, as_json=args.json)
    return run(cfg)


def build(cfg: CollectorConfig) -> Any:
    """The collector's parts from its config (the collector's composition root)."""
    from agent.collector.ingest import Ingest
    from agent.collector.messages import Parser
    from agent.collector.service import Collector
    from agent.collector.storage import open_storage

    notifier = Notifier.from_env()
    storage = open_storage(cfg)
    ingest = Ingest(Parser(cfg), storage, open_index(cfg.index_location, notifier))
    return Collector(cfg, ingest, notifier)


def open_index(path: Path | str, notifier: Notifier, max_pause_s: float = 30.0) -> Index:
    """The index, waiting for space when the disk is full at start: a restart would not free any."""
    pause, since, waiting = 0.5, time.monotonic(), False
    while True:
        try:
            index = Index(path)
        except IndexFullError as exc:
            if not waiting:
                waiting = True
                log.error("collector_disk_full", error=str(exc))
                notifier.status(f"disk full, waiting for space: {exc}")
            time.sleep(pause)
            pause = min(pause * 2, max_pause_s)
            continue
        if waiting:
            log.info("collector_disk_recovered", waited_s=round(time.monotonic() - since, 1))
        return index


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
    index = Index(cfg.index_location)
    try:
        report = stats_report(index, seconds, accuracy=cfg.accuracy)
    finally:
        index.close()
    sys.stdout.write((json.dumps(report, indent=1) if as_json else format_report(report)) + "\n")
    return 0


def fsck(cfg: CollectorConfig, *, repair: bool, as_json: bool) -> int:
    """Exit 0 when files and rows agree (or every problem was repaired), 1 when problems remain."""
    from agent.collector import fsck as checker
    from agent.collector.storage import open_storage

    storage = open_storage(cfg)
    index = Index(cfg.index_location)
    try:
        report = checker.check(index, storage, cfg.index_path)
        if repair:
            checker.repair(report, index, storage)
    finally:
        index.close()
        storage.close()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=1) + "\n")
    else:
        for finding in report.findings:
            sys.stdout.write(finding.line() + "\n")
        problems = ", ".join(f"{n} {kind}" for kind, n in report.counts().items() if n) or "no problems"
        done = f", {report.repaired} repaired" if repair else ""
        sys.stdout.write(f"{report.files} files, {report.rows} sample rows: {problems}{done}\n")
    return 0 if not report.findings or report.repaired == len(report.findings) else 1


def migrate(source: str | None, target: str | None) -> int:
    """Copy one collector's dataset into other backends; rerun to resume."""
    from agent.collector.migrate import migrate as copy

    if not source or not target:
        raise ConfigError("collector migrate: give --from CONFIG and --to CONFIG")
    report = copy(load_collector_config(source), load_collector_config(target))
    sys.stdout.write(
        f"{report.objects} objects ({report.copied} copied, {report.skipped} already there, "
        f"{report.bytes / 1e6:.1f} MB, all checksums verified), {report.rows} rows\n"
    )
    return 0
