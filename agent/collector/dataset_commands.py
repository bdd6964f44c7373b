"""``inspection-agent dataset label|reopen|export|import|stats --config PATH``: the retraining dataset."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index
from agent.collector.storage import open_storage
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.collector.review.service import ReviewService


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("dataset", help="label and export the collected samples")
    actions = p.add_subparsers(dest="dataset_action", metavar="ACTION", required=True)

    label = actions.add_parser(
        "label", help="vote samples' true label as one reviewer (labeled once review.votes_required agree)"
    )
    label.add_argument("ids", nargs="+", metavar="ID")
    label.add_argument("--as", dest="label", required=True, metavar="LABEL")
    label.add_argument("--reviewer", help="the name the votes are recorded under (default cli:$USER)")
    label.add_argument(
        "--adjudicate", action="store_true", help="decide as an admin (disputed or already labeled samples)"
    )
    label.add_argument("--config", required=True, help="the collector's YAML config")
    label.set_defaults(func=label_cmd)

    reopen = actions.add_parser(
        "reopen", help="send decided samples back to the reviewers for a new round (as an admin)"
    )
    reopen.add_argument("ids", nargs="+", metavar="ID")
    reopen.add_argument("--reason", required=True, help="why, for the audit trail")
    reopen.add_argument("--admin", help="the name it is recorded under (default cli:$USER)")
    reopen.add_argument("--config", required=True, help="the collector's YAML config")
    reopen.set_defaults(func=reopen_cmd)

    exp = actions.add_parser(
        "export", help="write labeled samples as train/val/test splits, or open ones as Label Studio tasks"
    )
    exp.add_argument("--to", required=True, type=Path, metavar="DIR")
    exp.add_argument(
        "--format", choices=("imagefolder", "csv", "coco", "yolo", "label-studio"), default="imagefolder"
    )
    exp.add_argument(
        "--image-url",
        metavar="PREFIX",
        help="label-studio: URL prefix of the exported images/ (default: Label Studio's local files)",
    )
    exp.add_argument("--split", default="70/15/15", help="train/val[/test] percentages (default 70/15/15)")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--model", help="only this model's samples")
    exp.add_argument("--version", help="only this model version's samples")
    exp.add_argument("--config", required=True, help="the collector's YAML config")
    exp.set_defaults(func=export_cmd)

    imp = actions.add_parser(
        "import", help="bring finished Label Studio annotations back as review votes (by annotator)"
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="Label Studio's JSON export")
    imp.add_argument("--format", choices=("label-studio",), required=True)
    imp.add_argument(
        "--annotator",
        action="append",
        default=[],
        metavar="ID=NAME",
        help="name a Label Studio user id (its export names annotators by id); repeatable",
    )
    imp.add_argument("--config", required=True, help="the collector's YAML config")
    imp.set_defaults(func=import_cmd)

    st = actions.add_parser("stats", help="samples per model, version, state and label")
    st.add_argument("--config", required=True, help="the collector's YAML config")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=stats_cmd)


def _open(args: argparse.Namespace) -> tuple[CollectorConfig, Index]:
    cfg = load_collector_config(args.config)
    return cfg, Index(cfg.index_location)


def _service(args: argparse.Namespace) -> ReviewService:
    """The review service the web app uses: the CLI labels through the same code path."""
    from agent.collector.review.service import ReviewService

    cfg = load_collector_config(args.config)
    return ReviewService.open(cfg.index_location, open_storage(cfg), cfg.review)


def label_cmd(args: argparse.Namespace) -> int:
    from agent.collector.dataset import label_samples

    reviewer = args.reviewer or f"cli:{getpass.getuser()}"
    service = _service(args)
    try:
        problems = label_samples(service, args.ids, args.label, reviewer=reviewer, adjudicate=args.adjudicate)
    finally:
        service.close()
    for problem in problems:
        sys.stderr.write(f"inspection-agent: dataset label: {problem}\n")
    done = len(args.ids) - len(problems)
    verb = "decided" if args.adjudicate else "voted"
    sys.stdout.write(f"{verb} {done} sample(s) as {args.label} (reviewer {reviewer})\n")
    return 1 if problems else 0


def reopen_cmd(args: argparse.Namespace) -> int:
    from agent.collector.dataset import reopen_samples

    admin = args.admin or f"cli:{getpass.getuser()}"
    service = _service(args)
    try:
        problems = reopen_samples(service, args.ids, admin=admin, reason=args.reason)
    finally:
        service.close()
    for problem in problems:
        sys.stderr.write(f"inspection-agent: dataset reopen: {problem}\n")
    sys.stdout.write(f"reopened {len(args.ids) - len(problems)} sample(s) for a new round (by {admin})\n")
    return 1 if problems else 0


def export_cmd(args: argparse.Namespace) -> int:
    from agent.collector.dataset import Split, export

    split = Split.parse(args.split)
    service = _service(args)
    try:
        summary = export(
            service,
            args.to,
            fmt=args.format,
            split=split,
            seed=args.seed,
            model=args.model,
            version=args.version,
            image_url=args.image_url,
        )
    finally:
        service.close()
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


def import_cmd(args: argparse.Namespace) -> int:
    """Each task that cannot be imported is reported on its own line; the others are imported."""
    from agent.collector.formats.label_studio import import_annotations, read_export

    names = {}
    for pair in args.annotator:
        uid, sep, name = pair.partition("=")
        if not sep or not uid or not name:
            raise ConfigError(f"--annotator {pair!r}: expected ID=NAME, e.g. 10=anna")
        names[uid] = name
    tasks = read_export(args.file)
    service = _service(args)
    try:
        report = import_annotations(service, tasks, names)
    finally:
        service.close()
    for problem in report.problems:
        sys.stderr.write(f"inspection-agent: dataset import: {problem}\n")
    sys.stdout.write(
        f"imported {report.votes} vote(s) and {report.boxes} box(es) from {len(tasks)} task(s); "
        f"{report.skipped} skipped by the annotator, {len(report.problems)} not imported\n"
    )
    return 1 if report.problems else 0


def stats_cmd(args: argparse.Namespace) -> int:
    from agent.collector.dataset import dataset_stats

    _, index = _open(args)
    try:
        rows = dataset_stats(index)
    finally:
        index.close()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return 0
    for r in rows:
        sys.stdout.write(
            f"{r['model']:<20} {r['version']:<10} {r['state']:<10} {r['label']:<16} "
            f"{r['count']:>7} {r['bytes'] / 1e6:>9.1f} MB\n"
        )
    sys.stdout.write(f"total {sum(r['count'] for r in rows)}\n")
    return 0
