#!/usr/bin/env python3
"""Device side of a model flash: verify, validate, install, switch, reload, confirm.

``deploy/flash-model`` copies this file beside the package into a staging directory on the
device and runs it with the agent's own interpreter (``/opt/inspection-agent/venv/bin/python``),
so it always matches the laptop's tool while the store operations come from the installed
``agent.modelstore``. It prints one JSON line on stdout (the per-host result) and progress on
stderr.

Exit codes: 0 flashed and confirmed; 3 refused before the switch (transfer, checksum, validation,
install: the running model is untouched); 4 the agent rolled back or failed to load it (``current``
is back on the previous version); 5 the agent did not confirm in time; 6 the reload could not be
sent (``current`` restored); 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent import modelstore as ms
from agent.config import load_config
from agent.errors import AgentError

DEFAULT_STORE = "/var/lib/inspection-agent/models"
INSTALLED_CLI = "/opt/inspection-agent/venv/bin/inspection-agent"
REFUSED, ROLLED_BACK, TIMEOUT, RELOAD_FAILED = 3, 4, 5, 6


@dataclass
class Outcome:
    ok: bool
    step: str
    message: str
    name: str | None = None
    version: str | None = None
    previous: str | None = None
    code: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """A step failed; carries the step name and the exit code."""

    def __init__(self, step: str, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.step, self.code = step, code


def default_validate_cmd() -> list[str]:
    cli = (
        INSTALLED_CLI if Path(INSTALLED_CLI).exists() else (shutil.which("inspection-agent") or INSTALLED_CLI)
    )
    return [cli, "model", "validate"]


def validate(package: Path, command: list[str], config: Path | None, timeout_s: float) -> None:
    """``inspection-agent model validate PACKAGE --json [--config CFG]`` on this hardware: exit 0 = valid.

    ``--config`` lets it apply the device's ``model.require_signature`` and ``trusted_keys``.
    """
    argv = [*command, str(package), "--json"]
    if config is not None and config.is_file():
        argv += ["--config", str(config)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Refused("validate", f"cannot run {shlex.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise Refused("validate", f"validation failed: {_validate_reason(proc.stdout, proc.stderr)}")


def _validate_reason(stdout: str, stderr: str) -> str:
    """The failed checks from ``--json`` (``{"ok": false, "checks": [{"name", "ok", "detail"}]}``)."""
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    if isinstance(report, dict):
        failed = [c for c in report.get("checks") or [] if isinstance(c, dict) and not c.get("ok")]
        reasons = [f"{c.get('name')}: {c.get('detail')}" for c in failed] or report.get("failures") or []
        if reasons:
            return "; ".join(str(r) for r in reasons)
    text = (stderr.strip() or stdout.strip()).splitlines()
    return text[-1] if text else "no reason given"


def reload_agent(method: str, config: Path | None) -> None:
    """``systemd`` (``systemctl reload inspection-agent@{config stem}``), ``systemd:UNIT``,
    ``pid:PIDFILE`` (SIGHUP) or ``none``."""
    if method == "none":
        return
    if method.startswith("pid:"):
        try:
            os.kill(int(Path(method[4:]).read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise Refused(
                "reload", f"cannot signal the agent via {method[4:]}: {exc}", RELOAD_FAILED
            ) from exc
        return
    unit = method[8:] if method.startswith("systemd:") else None
    if unit is None:
        if method != "systemd" or config is None:
            raise Refused(
                "reload", f"unknown reload method {method!r} (systemd needs --config)", RELOAD_FAILED
            )
        unit = f"inspection-agent@{config.stem}.service"
    proc = subprocess.run(
        ["systemctl", "reload", unit], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise Refused("reload", f"systemctl reload {unit} failed: {proc.stderr.strip()}", RELOAD_FAILED)


def wait_for_state(
    state_file: Path, name: str, version: str, since_ms: int, timeout_s: float
) -> dict[str, Any]:
    """Poll ``model-state.json`` until the agent reports on this flash (written after ``since_ms``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = _read_state(state_file)
        if state is not None and int(state.get("ts", 0)) >= since_ms:
            if state.get("state") in ("rolled_back", "failed"):
                return state
            if (
                state.get("state") == "active"
                and state.get("name") == name
                and state.get("version") == version
            ):
                return state
        if time.monotonic() >= deadline:
            raise Refused(
                "confirm", f"the agent did not report {name} {version} within {timeout_s:.0f}s", TIMEOUT
            )
        time.sleep(0.2)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def state_file_for(args: argparse.Namespace) -> Path:
    """``--state-file``, else ``{state.dir}/model-state.json`` from the agent config (one per camera)."""
    if args.state_file:
        return Path(args.state_file)
    if not args.config or not Path(args.config).is_file():
        raise Refused("verify", f"no agent config at {args.config}: pass --config or --state-file")
    try:
        return load_config(args.config).state_dir / "model-state.json"
    except AgentError as exc:
        raise Refused("verify", f"cannot read the agent config {args.config}: {exc}") from exc


def flash(args: argparse.Namespace) -> Outcome:
    package, store = Path(args.package), Path(args.store)
    config = Path(args.config) if args.config else None
    try:
        if args.digest and ms.tree_digest(package) != args.digest:
            raise Refused("transfer", "the package arrived damaged (content differs from the sender's)")
        name, version = ms.package_identity(package)
        state_file = None if args.reload == "none" else state_file_for(args)  # known before anything switches
        ms.verify_checksums(package)
        validate(package, shlex.split(args.validate_cmd) if args.validate_cmd else default_validate_cmd(),
                 config, args.validate_timeout)  # fmt: skip
        ms.install_package(package, store)
    except (AgentError, OSError) as exc:
        return Outcome(False, "verify", str(exc), code=REFUSED)
    except Refused as exc:
        return Outcome(False, exc.step, str(exc), code=exc.code)
    previous = ms.current_version(store, name)
    if previous == version:
        return Outcome(True, "done", f"{name} {version} is already current", name, version, previous)
    return _switch_and_confirm(args, store, config, state_file, name=name, version=version, previous=previous)


def _switch_and_confirm(
    args: argparse.Namespace,
    store: Path,
    config: Path | None,
    state_file: Path | None,
    *,
    name: str,
    version: str,
    previous: str | None,
) -> Outcome:
    since_ms = int(time.time() * 1000)
    ms.activate(store, name, version)
    _progress(f"current -> {name} {version} (was {previous})")
    try:
        reload_agent(args.reload, config)
        state = (
            {} if state_file is None else wait_for_state(state_file, name, version, since_ms, args.timeout)
        )
    except Refused as exc:
        if exc.code == RELOAD_FAILED:
            _restore(store, name, version, previous)
        return Outcome(False, exc.step, str(exc), name, version, previous, exc.code)
    if state.get("state") in ("rolled_back", "failed"):
        _restore(store, name, version, previous)
        reason = state.get("reason") or state.get("state")
        return Outcome(False, "confirm", f"the agent {state.get('state')}: {reason}", name, version, previous,
                       ROLLED_BACK, state)  # fmt: skip
    removed = ms.prune(store, name, keep=args.keep)
    message = f"{name} {previous} -> {version} active" + (
        f" (pruned {', '.join(removed)})" if removed else ""
    )
    return Outcome(True, "done", message, name, version, previous, 0, state)


def _restore(store: Path, name: str, version: str, previous: str | None) -> None:
    """Put ``current`` back on the previous version unless the agent already did."""
    if previous is not None and ms.current_version(store, name) == version:
        ms.activate(store, name, previous)
        _progress(f"current restored to {name} {previous}")


def rollback(args: argparse.Namespace) -> Outcome:
    store = Path(args.store)
    config = Path(args.config) if args.config else None
    try:
        name = args.name or _only_model(store)
        current = ms.current_version(store, name)
        target = ms.rollback(store, name)
        reload_agent(args.reload, config)
    except AgentError as exc:
        return Outcome(False, "rollback", str(exc), code=REFUSED)
    except Refused as exc:
        return Outcome(False, exc.step, str(exc), code=exc.code)
    return Outcome(True, "done", f"{name} {current} -> {target}", name, target, current)


def _only_model(store: Path) -> str:
    names = sorted(p.name for p in store.iterdir() if (p / ms.CURRENT).is_symlink()) if store.is_dir() else []
    if len(names) != 1:
        raise Refused(
            "rollback", f"store {store} holds {len(names)} models ({', '.join(names)}); pass --name"
        )
    return names[0]


def status(args: argparse.Namespace) -> Outcome:
    store = Path(args.store)
    models = {
        p.name: {"current": ms.current_version(store, p.name), "history": ms.history(store, p.name)}
        for p in sorted(store.iterdir()) if p.is_dir() and not p.name.startswith(".")
    } if store.is_dir() else {}  # fmt: skip
    return Outcome(True, "done", f"{len(models)} model(s)", details={"models": models})


def _progress(text: str) -> None:
    sys.stderr.write(f"device-flash: {text}\n")
    sys.stderr.flush()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="device-flash", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for cmd in ("flash", "rollback", "status"):
        s = sub.add_parser(cmd)
        s.add_argument("--store", default=DEFAULT_STORE)
        if cmd == "status":
            continue
        s.add_argument("--config", help="the agent config of the instance to reload")
        s.add_argument("--reload", default="systemd", help="systemd | systemd:UNIT | pid:PIDFILE | none")
        if cmd == "rollback":
            s.add_argument("--name", help="model name (default: the only model in the store)")
            continue
        s.add_argument("--package", required=True)
        s.add_argument("--digest", help="tree digest computed by the sender: detects a damaged transfer")
        s.add_argument("--validate-cmd", help="default: inspection-agent model validate")
        s.add_argument("--validate-timeout", type=float, default=600.0)
        s.add_argument("--state-file", help="default: {state.dir}/model-state.json from --config")
        s.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the agent's verdict")
        s.add_argument("--keep", type=int, default=3, help="versions kept in the store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    outcome = {"flash": flash, "rollback": rollback, "status": status}[args.command](args)
    sys.stdout.write(json.dumps(asdict(outcome)) + "\n")
    return outcome.code


if __name__ == "__main__":
    raise SystemExit(main())
