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
    "web": "agent.console.commands",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspection-agent", description=__doc__.splitlines()[0])
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
