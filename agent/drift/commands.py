"""``inspection-agent drift calibrate --config CFG --windows N``: re-baseline drift from the line.

Prints where the baseline went and what it holds (frames, class mix); exit 0 when written, 2 for
a config that cannot use it, 3 when the model or camera fails (:mod:`agent.cli`'s codes).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("drift", help="drift monitoring tools (calibrate the baseline)")
    sub = parser.add_subparsers(dest="drift_command", metavar="STEP", required=True)
    p = sub.add_parser(
        "calibrate", help="learn {state.dir}/drift-baseline.json from N windows of the configured camera"
    )
    p.add_argument("--config", required=True, help="the agent config (camera, model, drift, state.dir)")
    p.add_argument(
        "--windows", type=int, default=None, help="windows to learn from (default drift.learn_windows)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.drift.calibrate import calibrate

    cfg = load_config(args.config)
    windows = args.windows if args.windows is not None else cfg.drift.learn_windows

    def progress(done: int, needed: int) -> None:
        if not args.quiet:
            sys.stderr.write(f"window {done}/{needed}\n")

    result = calibrate(cfg, windows, progress)
    block = result.document["reference"]
    mix = ", ".join(f"{k} {v:.2f}" for k, v in block["class_mix"].items())
    model = result.document["model"]
    sys.stdout.write(
        f"drift baseline for {model['name']} {model['version']} written to {result.path}: "
        f"{windows} windows, {result.frames} frames, class mix {mix}; restart the agent to use it\n"
    )
    return 0
