"""``inspection-agent train``: retrain the user's model on collected data into a package ready to flash.

Exit codes follow :mod:`agent.cli`: 0 a validated package was written, 2 bad usage or
configuration, 3 the data, the base model or the result was refused (one line says why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="retrain a Keras model on exported samples into a validated int8 package",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "--data", action="append", required=True, type=Path, metavar="DIR",
        help="a `dataset export` folder or an image folder (LABEL/*.jpg); repeat to merge",
    )  # fmt: skip
    p.add_argument(
        "--base", required=True, type=Path, metavar="MODEL",
        help="Keras model file (.keras/.h5) or a package written by this command (ships its float model)",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, metavar="PKGDIR", help="package directory to write")
    p.add_argument("--version", required=True, help="version of the new package, e.g. 1.1.0")
    p.add_argument("--config", type=Path, metavar="YAML", help="train.yaml (see docs/retraining.md)")
    p.add_argument("--force", action="store_true", help="replace --out when it exists")
    p.set_defaults(func=train_cmd)


def train_cmd(args: argparse.Namespace) -> int:
    from agent.train.config import load_train_config
    from agent.train.prepare import Request
    from agent.train.retrain import run

    request = Request(
        data=tuple(args.data),
        base=args.base,
        out=args.out,
        version=args.version,
        config=load_train_config(args.config),
        force=bool(args.force),
    )
    run(request, say=lambda line: print(line, flush=True), stream=sys.stderr)
    return 0
