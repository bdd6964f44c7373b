"""Putting a new model in service on this device: check, validate, switch, reload, confirm.

Used by ``inspection-agent store``; runs on the device itself, with the installed agent, so the
steps always match the store and the agent they drive (``deploy/flash-model`` and the Ansible
playbook only copy the package over and call the CLI).

Until the switch, a failure leaves the running model untouched. After it, a reload that
cannot be sent or an agent that refuses the new model puts ``current`` back on the previous
version, unless the agent already did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from agent.model import state as model_state
from agent.model.store import ModelStore

# The step names a failure reports (``deploy/flash-model`` turns them into its exit codes).
PACKAGE_STEPS = ("transfer", "verify", "validate")  # the package was found at fault
CONFIRM = "confirm"


class StepFailed(AgentError):
    """One step did not succeed; ``details`` carries the agent's verdict when it gave one."""

    def __init__(self, step: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.details = details or {}

    @property
    def exit_code(self) -> int:
        """As in :mod:`agent.cli`: 1 the command ran and found a problem (bad package, the agent
        refused it), 2 bad usage or configuration, 3 a step that could not be carried out."""
        if self.step == "config":
            return 2
        return 1 if self.step in PACKAGE_STEPS or (self.step == CONFIRM and self.details) else 3


@dataclass
class Outcome:
    """What a store command reports: one JSON line with ``--json``, read by the operator's tools."""

    ok: bool
    step: str
    message: str
    name: str | None = None
    version: str | None = None
    previous: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def report(step: Callable[[], Outcome], *, as_json: bool, command: str, name: str) -> int:
    """Run one store step and print its outcome the way every store command does; the exit code.

    ``command`` prefixes the error line (``store``, ``model promote``); ``name`` is the step
    reported when an error carries none of its own.
    """
    try:
        outcome, code = step(), 0
    except StepFailed as exc:
        outcome, code = Outcome(False, exc.step, str(exc), details=exc.details), exc.exit_code
    except AgentError as exc:
        outcome, code = Outcome(False, name, str(exc)), 3
    if as_json:
        sys.stdout.write(outcome.to_json() + "\n")
    elif outcome.ok:
        sys.stdout.write(outcome.message + "\n")
    else:
        sys.stderr.write(f"inspection-agent: {command}: [{outcome.step}] {outcome.message}\n")
    return code


@dataclass(frozen=True)
class Reload:
    """How to tell the agent to re-resolve ``current``, and where it answers."""

    method: str  # systemd | systemd:UNIT | pid:PIDFILE | none
    config: Path | None
    state_file: Path | None
    timeout_s: float

    @property
    def enabled(self) -> bool:
        return self.method != "none"


def check_transfer(src: Path, expected: str) -> None:
    """The archive arrived as it was sent (a dropped connection leaves it short)."""
    digest = hashlib.sha256()
    try:
        with src.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise StepFailed("transfer", f"cannot read {src}: {exc.strerror or exc}") from exc
    if digest.hexdigest() != expected.lower():
        raise StepFailed("transfer", "the package arrived damaged (its sha256 differs from the sender's)")


def default_validate_cmd() -> list[str]:
    """This very agent: validation runs in a child so a crashing runtime cannot take the store down."""
    return [sys.executable, "-m", "agent", "model", "validate"]


def validate(package: Path, command: list[str], config: Path | None, timeout_s: float) -> None:
    """``… model validate PACKAGE --json [--config CFG]`` on this hardware: exit 0 = valid.

    ``--config`` lets it apply the device's ``model.require_signature`` and ``trusted_keys``.
    """
    argv = [*command, str(package), "--json"]
    if config is not None and config.is_file():
        argv += ["--config", str(config)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed("validate", f"cannot run {shlex.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise StepFailed("validate", f"validation failed: {validate_reason(proc.stdout, proc.stderr)}")


def validate_reason(stdout: str, stderr: str) -> str:
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


def state_file_for(config: Path | None, given: Path | None) -> Path:
    """``given``, else ``{state.dir}/model-state.json`` of the agent config (one per camera)."""
    if given is not None:
        return given
    if config is None or not config.is_file():
        raise StepFailed("config", f"no agent config at {config}: pass --config or --state-file")
    from agent.config import load_config

    try:
        return model_state.path_in(load_config(config).state_dir)
    except AgentError as exc:
        raise StepFailed("config", f"cannot read the agent config {config}: {exc}") from exc


def reload_agent(method: str, config: Path | None) -> None:
    """``systemd`` (``systemctl reload inspection-agent@{config stem}``), ``systemd:UNIT``,
    ``pid:PIDFILE`` (SIGHUP) or ``none``."""
    if method == "none":
        return
    if method.startswith("pid:"):
        try:
            os.kill(int(Path(method[4:]).read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise StepFailed("reload", f"cannot signal the agent via {method[4:]}: {exc}") from exc
        return
    unit = method[8:] if method.startswith("systemd:") else None
    if unit is None:
        if method != "systemd" or config is None:
            raise StepFailed("reload", f"unknown reload method {method!r} (systemd needs --config)")
        unit = f"inspection-agent@{config.stem}.service"
    try:
        proc = subprocess.run(reload_argv(unit), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed("reload", f"cannot run systemctl reload {unit}: {exc}") from exc
    if proc.returncode != 0:
        raise StepFailed("reload", f"systemctl reload {unit} failed: {proc.stderr.strip()}")


def reload_argv(unit: str, euid: int | None = None) -> list[str]:
    """``systemctl reload UNIT``; as the service user through ``sudo -n``, which the rule that
    deploy/install.sh writes allows for agent units only (no root login on the device)."""
    argv = ["systemctl", "reload", unit]
    uid = os.geteuid() if euid is None else euid
    return argv if uid == 0 or shutil.which("sudo") is None else ["sudo", "-n", *argv]


def switch_and_confirm(store: ModelStore, name: str, version: str, reload: Reload) -> Outcome:
    """Switch ``current`` to ``version``, reload the agent and wait for its verdict.

    A reload that cannot be sent, or a verdict against the new model, puts ``current`` back.
    """
    previous = store.current(name)
    since_ms = model_state.now_ms()
    store.activate(name, version)
    try:
        reload_agent(reload.method, reload.config)
    except StepFailed:
        _restore(store, name, version, previous)
        raise
    if not reload.enabled or reload.state_file is None:
        return Outcome(True, "done", _switched(name, previous, version), name, version, previous)
    verdict = model_state.wait_for(reload.state_file, name, version, since_ms, reload.timeout_s)
    if verdict is None:
        raise StepFailed(CONFIRM, f"the agent did not report {name} {version} within {reload.timeout_s:.0f}s")
    if verdict.state in model_state.REFUSED:
        _restore(store, name, version, previous)
        reason = verdict.reason or verdict.state
        raise StepFailed(CONFIRM, f"the agent {verdict.state}: {reason}", dict(verdict.as_dict()))
    return Outcome(
        True, "done", _switched(name, previous, version), name, version, previous, dict(verdict.as_dict())
    )


def _switched(name: str, previous: str | None, version: str) -> str:
    return f"{name} {previous} -> {version} active"


def _restore(store: ModelStore, name: str, version: str, previous: str | None) -> None:
    """Put ``current`` back on the previous version unless the agent already did."""
    if previous is not None and store.current(name) == version:
        store.activate(name, previous)
