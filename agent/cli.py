"""``inspection-agent`` command line. Each command group registers itself; this module only dispatches.

Exit codes: 0 success, 1 the command ran and found problems (check/validate), 2 bad usage
or configuration, 3 a runtime failure (model, camera, broker) that stopped the agent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import __version__
from agent.errors import AgentError, ConfigError

# Modules that add subcommands: each has `register(subparsers)` and sets `func` on its parsers,
# a callable taking the parsed namespace and returning the exit code. Imported lazily per command
# so `inspection-agent run` does not import the collector or the model tools.
_COMMANDS = {
    "run": "agent.commands.run",
    "check": "agent.commands.check",
    "bench": "agent.commands.bench",
    "model": "agent.model.commands",
    "store": "agent.model.store_commands",
    "status": "agent.commands.status",
    "collector": "agent.collector.commands",
    "dataset": "agent.collector.dataset_commands",
    "train": "agent.train.commands",
    "drift": "agent.drift.commands",
    "web": "agent.console.commands",
}


# What a technician or an operator reads in `--help` (the module docstring is for developers).
DESCRIPTION = (
    "Edge visual inspection: inspect camera frames with a TFLite or ONNX model, publish results and\n"
    "defects over MQTT, flash and roll back models, and collect samples for retraining."
)
EPILOG = """examples:
  inspection-agent status                          this device's agent: running? model, fps, broker
  inspection-agent check --config /etc/inspection-agent/cam-01.yaml
  inspection-agent model validate /var/lib/inspection-agent/models/demo-defects/current

exit codes: 0 ok, 1 a check found problems, 2 bad usage or config, 3 a model, camera or broker failure.
On a device, /usr/local/bin/inspection-agent finds the config itself (docs/deploy.md)."""


class _Raw(argparse.RawDescriptionHelpFormatter):
    """Keep the description's and examples' line breaks."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspection-agent", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Raw
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see: inspection-agent {name} --help)", add_help=False)
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(wanted if wanted in _COMMANDS else None)
    args = parser.parse_args(args_list)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"inspection-agent: config error: {problem}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"inspection-agent: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
