"""``inspection-agent store …``: the device's model store, for people and for fleet tools.

``install`` (check, validate, copy in, and with ``--activate`` switch, reload and confirm;
with ``--shadow`` run it as the agent's shadow model), ``activate``, ``rollback``, ``shadow``,
``prune`` and ``status``. ``deploy/flash-model``, ``deploy/rollback``,
the Ansible playbooks and ``deploy/install.sh`` all run these on the device over SSH, so the
laptop's checkout never drives the device's store directly.

Exit codes follow :mod:`agent.cli`: 0 done, 1 the package or the agent's verdict was against
it (transfer, checksum, validation, rollback by the agent), 2 bad usage, 3 a step could not
be carried out (store, reload, no verdict in time). With ``--json`` the outcome is one JSON
line on stdout (``ok``, ``step``, ``message``, ``name``, ``version``, ``previous``,
``details``); without, a line on stdout on success or one ``inspection-agent: store: …``
line on stderr on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from agent.model import rollout
from agent.model.rollout import Outcome, Reload, StepFailed
from agent.model.store import DEFAULT_ROOT, ModelStore, verify

Handler = Callable[[argparse.Namespace, ModelStore], Outcome]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("store", help="install, activate, roll back and prune model packages")
    sub = parser.add_subparsers(dest="store_command", metavar="STEP", required=True)
    _add_install(sub)
    p = _subcommand(sub, "activate", "point current at an installed version, reload and confirm", _activate)
    p.add_argument("name")
    p.add_argument("version")
    _add_reload(p)
    p = _subcommand(sub, "rollback", "switch current back one version and reload", _rollback)
    p.add_argument("name", nargs="?", help="model name (default: the only model in the store)")
    _add_reload(p, confirm=False)
    p = _subcommand(sub, "prune", "delete all but the current and the most recent versions", _prune)
    p.add_argument("name", nargs="?", help="model name (default: the only model in the store)")
    p.add_argument("--keep", type=int, default=3, help="versions kept, the current one included")
    p = _subcommand(
        sub, "shadow", "run an installed version as the agent's shadow model, or stop it", _shadow
    )
    p.add_argument("name")
    p.add_argument("version", nargs="?", help="the version to run as the shadow (omit with --clear)")
    p.add_argument("--clear", action="store_true", help="remove the shadow link: the agent stops its shadow")
    _add_reload(p, confirm=False)
    _subcommand(sub, "status", "list models, their current version and history", _status)


def _subcommand(sub: Any, name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    p.add_argument("--store", type=Path, default=DEFAULT_ROOT, help=f"store root (default {DEFAULT_ROOT})")
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON line")
    p.set_defaults(func=lambda args: _run(args, handler))
    return p


def _add_install(sub: Any) -> None:
    p = _subcommand(sub, "install", "check, validate and install a package (directory or tarball)", _install)
    p.add_argument("package", type=Path, help="package directory or .tar/.tar.gz")
    p.add_argument("--sha256", help="sha256 of the archive as sent: refuses a damaged transfer")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--validate-cmd", help="command replacing 'inspection-agent model validate'")
    check.add_argument("--no-validate", action="store_true", help="skip validation on this hardware")
    p.add_argument("--validate-timeout", type=float, default=600.0, help="seconds (default 600)")
    switch = p.add_mutually_exclusive_group()
    for flag, when, text in (
        ("--activate", "always", "then switch current to it, reload the agent and wait for its verdict"),
        ("--activate-if-none", "if-none", "switch only when the model has no current version yet"),
        ("--shadow", "shadow", "run it as the agent's shadow model beside the current one (store shadow)"),
    ):
        switch.add_argument(flag, action="store_const", const=when, dest="activate", help=text)
    p.add_argument("--keep", type=int, default=3, help="versions kept after a confirmed switch (default 3)")
    _add_reload(p)


def _add_reload(p: argparse.ArgumentParser, *, confirm: bool = True) -> None:
    p.add_argument("--config", type=Path, help="the agent config of the instance to reload")
    p.add_argument("--reload", default="systemd", help="systemd | systemd:UNIT | pid:PIDFILE | none")
    if confirm:
        p.add_argument("--state-file", type=Path, help="model-state.json (default: from --config)")
        p.add_argument("--confirm-timeout", type=float, default=120.0,
                       help="seconds to wait for the agent's verdict (default 120)")  # fmt: skip


def _run(args: argparse.Namespace, handler: Handler) -> int:
    def step() -> Outcome:
        return handler(args, ModelStore(args.store))

    return rollout.report(step, as_json=args.json, command="store", name=args.store_command)


def _install(args: argparse.Namespace, store: ModelStore) -> Outcome:
    if args.sha256 and args.package.is_dir():
        raise StepFailed("config", "--sha256 checks an archive; the package given is a directory")
    switching = args.activate in ("always", "if-none")
    reload = _reload(args) if switching else None  # known before anything switches
    if args.sha256:
        rollout.check_transfer(args.package, args.sha256)
    with _as_step("verify"), store.unpacked(args.package) as pkg:
        manifest = verify(pkg)
        name, version = manifest.name, manifest.version
        if not args.no_validate:
            command = shlex.split(args.validate_cmd) if args.validate_cmd else rollout.default_validate_cmd()
            rollout.validate(pkg, command, args.config, args.validate_timeout)
        with _as_step("install"):
            dest = store.install(pkg)
    if args.activate == "shadow":
        return _set_shadow(args, store, name, version)
    previous = store.current(name)
    if previous == version:
        return Outcome(True, "done", f"{name} {version} is already current", name, version, previous)
    if reload is None or (args.activate == "if-none" and previous is not None):
        return Outcome(True, "done", f"{name} {version} installed in {dest} (current: {previous})",
                       name, version, previous)  # fmt: skip
    outcome = rollout.switch_and_confirm(store, name, version, reload)
    removed = store.prune(name, keep=args.keep)
    if removed:
        outcome.message += f" (pruned {', '.join(removed)})"
    return outcome


def _activate(args: argparse.Namespace, store: ModelStore) -> Outcome:
    return rollout.switch_and_confirm(store, args.name, args.version, _reload(args))


def _shadow(args: argparse.Namespace, store: ModelStore) -> Outcome:
    if (args.version is None) != args.clear:
        raise StepFailed("config", "name a version, or --clear to stop the shadow")
    return _set_shadow(args, store, args.name, args.version)


def _set_shadow(args: argparse.Namespace, store: ModelStore, name: str, version: str | None) -> Outcome:
    """Point (or remove) the shadow link and tell the agent; it reports the shadow in its health."""
    with _as_step("shadow"):
        previous = store.set_shadow(name, version)
    with _as_step("reload"):
        rollout.reload_agent(args.reload, args.config)
    told = "" if args.reload == "none" else "; the agent reloads it (health: shadow)"
    message = f"{name} shadow {previous} -> {version}{told}"
    return Outcome(True, "done", message, name, version, previous, details={"shadow": version})


def _rollback(args: argparse.Namespace, store: ModelStore) -> Outcome:
    name = args.name or _only_model(store)
    current = store.current(name)
    target = store.rollback(name)
    rollout.reload_agent(args.reload, args.config)
    return Outcome(True, "done", f"{name} {current} -> {target}", name, target, current)


def _prune(args: argparse.Namespace, store: ModelStore) -> Outcome:
    name = args.name or _only_model(store)
    removed = store.prune(name, keep=args.keep)
    message = f"{name}: removed {', '.join(removed)}" if removed else f"{name}: nothing to remove"
    return Outcome(True, "done", message, name, store.current(name), details={"removed": removed})


def _status(args: argparse.Namespace, store: ModelStore) -> Outcome:
    models, lines = {}, []
    for name in store.models():
        current, versions, shadow = store.current(name), store.versions(name), store.shadow(name)
        models[name] = {
            "current": current,
            "shadow": shadow,
            "history": store.history(name),
            "versions": versions,
        }
        also = f", shadow {shadow}" if shadow else ""
        lines.append(f"{name}: current {current}{also}, installed {', '.join(versions) or 'none'}")
    return Outcome(True, "done", "\n".join(lines) or f"no models in {store.root}", details={"models": models})


def _reload(args: argparse.Namespace) -> Reload:
    """Settled before the switch: a flash that could not be confirmed must not switch at all."""
    state_file = None if args.reload == "none" else rollout.state_file_for(args.config, args.state_file)
    return Reload(args.reload, args.config, state_file, args.confirm_timeout)


def _only_model(store: ModelStore) -> str:
    names = store.models()
    if len(names) != 1:
        raise StepFailed(
            "config", f"store {store.root} holds {len(names)} models ({', '.join(names)}); name one"
        )
    return names[0]


@contextlib.contextmanager
def _as_step(step: str) -> Iterator[None]:
    """Report a store error inside the block as a failure of ``step`` (an inner step wins)."""
    try:
        yield
    except StepFailed:
        raise
    except AgentError as exc:
        raise StepFailed(step, str(exc)) from exc
