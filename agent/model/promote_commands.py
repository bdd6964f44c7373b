"""``inspection-agent model promote --config CFG``: make the shadow model the active one on this device.

The shadow (``model.shadow``) must be a version installed in the same store as the active
model (``model.path`` is that store's ``{name}/current``): promotion is then exactly
``store activate NAME VERSION`` (switch ``current``, reload the agent, wait for its verdict,
switch back if it refused), so a restart keeps the promoted model. The running agent's remote
command ``promote-shadow`` does the same over MQTT. Output and exit codes as ``store``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from agent.model import rollout
from agent.model.rollout import Outcome, Reload, StepFailed
from agent.model.store import CURRENT, ModelStore, verify


def register(sub: Any) -> None:
    p = sub.add_parser(
        "promote", help="make the shadow model (model.shadow) the active one: switch, reload, confirm"
    )
    p.add_argument(
        "--config", type=Path, required=True, help="the agent config naming model.path and model.shadow"
    )
    p.add_argument("--reload", default="systemd", help="systemd | systemd:UNIT | pid:PIDFILE | none")
    p.add_argument("--state-file", type=Path, help="model-state.json (default: from --config)")
    p.add_argument("--confirm-timeout", type=float, default=120.0, help="seconds to wait for the verdict")
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON line")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return rollout.report(lambda: promote(args), as_json=args.json, command="model promote", name="promote")


def promote(args: argparse.Namespace) -> Outcome:
    """Switch the store's ``current`` to the shadow's version and confirm with the agent."""
    from agent.config import load_config

    try:
        cfg = load_config(args.config)
    except AgentError as exc:
        raise StepFailed("config", f"cannot read the agent config {args.config}: {exc}") from exc
    if cfg.model.shadow is None:
        raise StepFailed("config", f"{args.config}: model.shadow is not set; there is no shadow to promote")
    link, shadow = cfg.resolve(cfg.model.path), cfg.resolve(cfg.model.shadow).resolve()
    if link.name != CURRENT or not link.is_symlink() or shadow.parent != link.parent.resolve():
        raise StepFailed(
            "config",
            f"model.shadow {shadow} is not a version beside model.path {link} in a model store: "
            "install it with `inspection-agent store install` and point model.shadow at it",
        )
    manifest = verify(shadow)
    store, name = ModelStore(link.parent.parent), link.parent.name
    if manifest.name != name or manifest.version != shadow.name:
        raise StepFailed(
            "verify", f"{shadow} holds {manifest.name} {manifest.version}, not a version of {name}"
        )
    state_file = None if args.reload == "none" else rollout.state_file_for(args.config, args.state_file)
    return rollout.switch_and_confirm(
        store, name, shadow.name, Reload(args.reload, args.config, state_file, args.confirm_timeout)
    )
