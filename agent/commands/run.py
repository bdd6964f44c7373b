"""``inspection-agent run --config PATH``: the long-running agent."""

from __future__ import annotations

import argparse
from typing import Any

from agent.config import load_config
from agent.log import configure


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("run", help="run the agent (the systemd service runs this)")
    p.add_argument("--config", required=True, help="the device's YAML config")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure(cfg.log.level, cfg.log.format, device=cfg.device.id)
    from agent.app import Agent  # the runtime parts load only once the config is known good

    return Agent(cfg).run()
