"""Operator side of ``deploy/flash-model`` and ``deploy/rollback``: hosts, SSH, one line per host.

Every step on a device is the device's own installed CLI (``inspection-agent store install
--activate`` / ``store rollback``, see docs/deploy.md), so the laptop's checkout never drives
the device's store and the two cannot disagree on versions. This module only needs Python 3 and
PyYAML (for YAML inventories) and imports nothing from the agent: the scripts beside it run from
a bare checkout, with this directory on ``sys.path`` as Python puts a script's own directory.

Per host, one ``ssh`` call streams the package archive (a package directory is tarred here)
into a fresh staging directory on the device and runs ``store install`` on it with the
archive's sha256; the staging directory goes when the remote shell exits, whatever happened.
A dropped connection stops the remote side before it touches the store; a damaged stream fails
the sha256 check there. Hosts are flashed one after the other; fleets use deploy/ansible/.

Hosts come from the command line, a YAML list, or an INI/Ansible-style inventory. YAML::

    hosts:
      - host: 10.0.0.21
        user: inspection-deploy     # the unprivileged deploy user deploy/install.sh creates
        port: 22
        identity: ~/.ssh/line3
        config: /etc/inspection-agent/cam-01.yaml   # optional, per host

INI (the Ansible inventory in deploy/ansible/ works as is; ``[group]`` lines are ignored)::

    10.0.0.21 ansible_user=inspection-deploy ansible_port=22 ansible_ssh_private_key_file=~/.ssh/line3
    cam-02.line3 user=pi port=2222 config=/etc/inspection-agent/cam-02.yaml

``--require-gate REPORT.json`` (a ``model compare --gate`` report) is checked here, before any
host is contacted: the report must have passed and name this very package (the sha256 of its
manifest.yaml, which pins every model file's sha256). A package that fails it never leaves this
machine (exit 3).

``--shadow`` installs the package the same way (checked, validated) but runs it as the agent's
shadow model (``store install --shadow``: the store's ``shadow`` link, then a reload) instead of
activating it; ``current`` is not touched. The agent's health and ``{root}/shadow`` say how it does.

Exit codes (per host, the first failing host's is returned): 0 flashed and confirmed; 3 refused
before the switch (transfer, checksum, validation, install: the running model is untouched);
4 the agent rolled back or failed to load it (``current`` is back on the previous version);
5 the agent did not confirm in time; 6 the reload could not be sent (``current`` restored);
2 usage; 255 SSH failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import yaml

# The wrapper deploy/install.sh puts on PATH: it runs `store` as the service user through the narrow
# sudoers rule it installs, so the deploy user needs no root login (stock Raspberry Pi OS has none).
DEFAULT_CLI = "/usr/local/bin/inspection-agent"
DEFAULT_USER = "inspection-deploy"
SERVICE_GROUP = "inspection"
REFUSED, ROLLED_BACK, TIMEOUT, RELOAD_FAILED, SSH_FAILED = 3, 4, 5, 6, 255
_ALIASES = {
    "ansible_host": "address",
    "ansible_user": "user",
    "ansible_port": "port",
    "ansible_ssh_private_key_file": "identity",
    "inspection_config": "config",
}
_KEYS = {"host", "address", "user", "port", "identity", "config"}


class InventoryError(ValueError):
    """Hosts or a package that cannot be used; the message names the file (and line)."""


class GateRefused(ValueError):
    """``--require-gate``: the report did not pass, names another package, or cannot be read."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str | None = None  # where to connect, when it differs from the name
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    config: str | None = None

    @property
    def target(self) -> str:
        address = self.address or self.name
        return f"{self.user}@{address}" if self.user else address

    def with_defaults(
        self, user: str | None, port: int | None, identity: str | None, config: str | None
    ) -> Host:
        """Command-line options fill in what the inventory left unset."""
        return replace(
            self,
            user=self.user or user,
            port=self.port or port,
            identity=self.identity or identity,
            config=self.config or config,
        )


def load(path: Path) -> list[Host]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory ({exc.strerror or exc})") from exc
    if path.suffix in (".yml", ".yaml"):
        return _from_yaml(path, text)
    return _from_ini(path, text)


def _from_yaml(path: Path, text: str) -> list[Host]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from exc
    entries = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise InventoryError(f"{path}: expected a non-empty list under 'hosts'")
    return [_host(path, i + 1, e if isinstance(e, dict) else {"host": e}) for i, e in enumerate(entries)]


def _from_ini(path: Path, text: str) -> list[Host]:
    hosts: dict[str, Host] = {}
    in_hosts = True  # [group:vars] and [group:children] sections list no hosts
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            in_hosts = not line.rstrip("]").endswith((":vars", ":children"))
            continue
        if not line or line.startswith(";") or not in_hosts:
            continue
        name, *pairs = line.split()
        fields: dict[str, Any] = {"host": name}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise InventoryError(f"{path}:{lineno}: expected key=value, got {pair!r}")
            fields[key] = value
        hosts.setdefault(name, _host(path, lineno, fields))  # a host in two groups is flashed once
    if not hosts:
        raise InventoryError(f"{path}: no hosts")
    return list(hosts.values())


def _host(path: Path, where: int, fields: dict[str, Any]) -> Host:
    values = {
        _ALIASES.get(k, k): v
        for k, v in fields.items()
        if not (k.startswith("ansible_") and k not in _ALIASES)
    }
    unknown = sorted(set(values) - _KEYS)
    if unknown or "host" not in values:
        raise InventoryError(f"{path}:{where}: needs 'host'; unknown keys: {', '.join(unknown) or 'none'}")
    port = values.get("port")
    try:
        port_num = int(port) if port is not None else None
    except ValueError:
        raise InventoryError(f"{path}:{where}: port {port!r} is not a number") from None
    if port_num is not None and not 0 < port_num < 65536:
        raise InventoryError(f"{path}:{where}: port {port_num} is out of range")
    opt = {k: str(values[k]) for k in ("address", "user", "identity", "config") if values.get(k) is not None}
    return Host(name=str(values["host"]), port=port_num, **opt)


# --- SSH ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """How to reach devices: known_hosts policy, timeouts, the agent's CLI on the device."""

    known_hosts: str | None = None
    connect_timeout_s: int = 10
    device_cli: str = DEFAULT_CLI  # a command prefix, e.g. "env PYTHONPATH=/src python3 -m agent"
    staging: str = "/var/tmp"
    timeout_s: float = 900.0

    def ssh_argv(self, host: Host, remote_command: str) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        else:
            argv += ["-o", "StrictHostKeyChecking=accept-new"]
        if host.identity:
            argv += ["-o", "IdentitiesOnly=yes", "-i", os.path.expanduser(host.identity)]
        if host.port:
            argv += ["-p", str(host.port)]
        return [*argv, host.target, remote_command]

    def store_command(self, step: str, *args: str, package: str = "") -> str:
        """``inspection-agent store STEP [PACKAGE] ARGS --json``; ``package`` is shell text (``"$d/…"``)."""
        quoted = [shlex.quote(a) for a in args]
        return " ".join([self.device_cli, "store", step, *([package] if package else []), *quoted, "--json"])

    def staged(self, command: str) -> str:
        """POSIX sh: stdin into a fresh staging dir as ``$d/package``, run ``command``, always clean up.

        The directory is handed to group inspection (when it exists) so the store CLI, running as
        the service user, can read the package the deploy user wrote.
        """
        staging = shlex.quote(f"{self.staging.rstrip('/')}/inspection-flash.XXXXXX")
        return (
            f"d=$(mktemp -d {staging}) || exit {REFUSED}; trap 'rm -rf \"$d\"' EXIT; "
            f'{{ chgrp {SERVICE_GROUP} "$d" && chmod 0750 "$d"; }} 2>/dev/null; '
            f"umask 022; "
            f'cat > "$d/package" || {{ echo "transfer: cannot stage the package" >&2; exit {REFUSED}; }}; '
            f"{command}"
        )


@dataclass(frozen=True)
class HostResult:
    host: str
    ok: bool
    code: int
    step: str
    message: str

    def line(self) -> str:
        return f"{self.host}: {'OK' if self.ok else 'FAILED'} [{self.step}] {self.message}"


def run_on_host(conn: Connection, host: Host, command: str, stdin: IO[bytes] | None = None) -> HostResult:
    """Run ``command`` on ``host`` (``stdin`` streamed to it) and read the store's JSON outcome."""
    try:
        proc = subprocess.run(
            conn.ssh_argv(host, command),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=conn.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return HostResult(host.name, False, TIMEOUT, "ssh", f"no answer within {conn.timeout_s:.0f}s")
    return _result(host, proc)


def _result(host: Host, proc: subprocess.CompletedProcess[str]) -> HostResult:
    lines = proc.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else None
    except ValueError:
        outcome = None
    if isinstance(outcome, dict) and "ok" in outcome:
        ok = bool(outcome["ok"])
        code = 0 if ok else code_for(outcome)
        return HostResult(host.name, ok, code, str(outcome.get("step")), str(outcome.get("message")))
    errors = proc.stderr.strip().splitlines()
    reason = errors[-1] if errors else f"exit status {proc.returncode}"
    step = "ssh" if proc.returncode == SSH_FAILED else "device"
    return HostResult(host.name, False, proc.returncode or 1, step, reason)


def code_for(outcome: dict[str, Any]) -> int:
    """This tool's exit code for a failed ``store`` outcome (see the module docstring)."""
    step = outcome.get("step")
    if step == "reload":
        return RELOAD_FAILED
    if step == "confirm":
        return ROLLED_BACK if outcome.get("details") else TIMEOUT
    return REFUSED


# --- flash and rollback -------------------------------------------------------------------------


def archive_of(package: Path, work: Path) -> Path:
    """The package as one archive: a tarball as given, a directory tarred under its own name."""
    if package.is_file():
        return package
    if not (package / "manifest.yaml").is_file():
        raise InventoryError(f"{package}: not a package directory (no manifest.yaml) or archive")
    out = work / "package.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(package, arcname=package.resolve().name)
    return out


def flash_hosts(
    conn: Connection,
    package: Path,
    hosts: Sequence[Host],
    store_args: Sequence[str],
    switch: str = "--activate",
) -> list[HostResult]:
    """Flash every host in turn with the same archive and its sha256; ``switch`` is ``--activate``
    (make it current, confirmed by the agent) or ``--shadow`` (run it beside the current one)."""
    with tempfile.TemporaryDirectory() as work:
        archive = archive_of(package, Path(work))
        sha256 = _sha256(archive)
        results = []
        for host in hosts:
            args = ["--sha256", sha256, switch, *store_args, *_config_arg(host)]
            command = conn.staged(conn.store_command("install", *args, package='"$d/package"'))
            with archive.open("rb") as stdin:
                result = run_on_host(conn, host, command, stdin)
            _report(result)
            results.append(result)
        return results


def check_gate(report: Path, package: Path) -> str:
    """The package's manifest sha256 when ``report`` allows it; GateRefused (one line) otherwise.

    The same rule as the agent's ``verify_gate_report`` (agent/model/gate.py), restated here
    because these scripts import nothing from the agent: ``passed`` is true and
    ``challenger.sha256`` is the sha256 of the package's manifest.yaml.
    """
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
        passed, wanted = doc["passed"], doc["challenger"]["sha256"]
    except OSError as exc:
        raise GateRefused(f"{report}: cannot read the gate report ({exc.strerror or exc})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise GateRefused(f"{report}: not a `model compare` report ({exc})") from exc
    actual = hashlib.sha256(_manifest_bytes(package)).hexdigest()
    if actual != wanted:
        raise GateRefused(
            f"gate report {report} was made for another package "
            f"(manifest sha256 {str(wanted)[:12]}…, this one {actual[:12]}…)"
        )
    if passed is not True:
        failed = "; ".join(
            str(c.get("name")) for c in doc.get("gate", {}).get("failed", []) if isinstance(c, dict)
        )
        raise GateRefused(f"gate report {report} did not pass: {failed or 'see the report'}")
    return actual


def _manifest_bytes(package: Path) -> bytes:
    """manifest.yaml of a package directory, or of the one package inside a tarball (read, not extracted)."""
    if package.is_dir():
        return (package / "manifest.yaml").read_bytes()
    try:
        with tarfile.open(package) as tar:
            found = [m for m in tar.getmembers() if m.isfile() and m.name.split("/")[-1] == "manifest.yaml"]
            fh = tar.extractfile(min(found, key=lambda m: m.name.count("/"))) if found else None
            if fh is None:
                raise GateRefused(f"{package}: no manifest.yaml in the archive")
            return fh.read()
    except (OSError, tarfile.TarError) as exc:
        raise GateRefused(f"{package}: cannot read the package ({exc})") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_arg(host: Host) -> list[str]:
    return ["--config", host.config] if host.config else []


def _report(result: HostResult) -> None:
    sys.stdout.write(result.line() + "\n")
    sys.stdout.flush()


def exit_code(results: Sequence[HostResult]) -> int:
    """0 when every host succeeded, else the first failing host's code."""
    return next((r.code or 1 for r in results if not r.ok), 0)


def common_parser(prog: str, description: str, *positionals: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    if "package" in positionals:
        p.add_argument("package", type=Path, help="package directory or .tar.gz")
    p.add_argument("hosts", nargs="*", metavar="HOST")
    p.add_argument("--inventory", type=Path, help="YAML list or INI/Ansible inventory of hosts")
    p.add_argument("--user", default=DEFAULT_USER, help=f"SSH user (default {DEFAULT_USER})")
    p.add_argument("--ssh-port", type=int, help="SSH port")
    p.add_argument("--identity", help="SSH private key")
    p.add_argument("--known-hosts", help="known_hosts file to check host keys against (default: accept-new)")
    p.add_argument("--config", default="/etc/inspection-agent/cam-01.yaml", help="agent config on the device")
    p.add_argument("--store", default="/var/lib/inspection-agent/models", help="model store on the device")
    p.add_argument("--reload", default="systemd", help="systemd | systemd:UNIT | pid:PIDFILE | none")
    p.add_argument("--device-cli", default=DEFAULT_CLI, help=f"the agent's CLI on the device ({DEFAULT_CLI})")
    return p


def resolve_hosts(args: argparse.Namespace) -> list[Host]:
    hosts = [Host(name=h) for h in args.hosts]
    if args.inventory:
        hosts += load(args.inventory)
    if not hosts:
        raise InventoryError("no hosts: name at least one HOST or --inventory FILE")
    return [h.with_defaults(args.user, args.ssh_port, args.identity, args.config) for h in hosts]


def connection(args: argparse.Namespace) -> Connection:
    return Connection(known_hosts=args.known_hosts, device_cli=args.device_cli)


def main_flash(argv: Sequence[str] | None = None) -> int:
    p = common_parser(
        "flash-model", "Flash a model package onto devices over SSH, with validation and rollback.", "package"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the agent's verdict")
    p.add_argument("--keep", type=int, default=3, help="versions kept on the device")
    p.add_argument("--validate-cmd", help="device command replacing 'inspection-agent model validate'")
    p.add_argument("--state-file", help="model-state.json on the device (default: from the config)")
    p.add_argument("--require-gate", type=Path, metavar="REPORT",
                   help="refuse unless this `model compare` report passed for this very package")  # fmt: skip
    p.add_argument("--shadow", action="store_true",
                   help="run it as the agent's shadow model beside the current one")  # fmt: skip
    args = p.parse_args(argv)
    store_args = ["--store", args.store, "--reload", args.reload, "--confirm-timeout", str(args.timeout)]
    store_args += ["--keep", str(args.keep)]
    store_args += ["--validate-cmd", args.validate_cmd] if args.validate_cmd else []
    store_args += ["--state-file", args.state_file] if args.state_file else []
    try:
        hosts = resolve_hosts(args)
    except InventoryError as exc:
        sys.stderr.write(f"flash-model: {exc}\n")
        return 2
    try:
        if args.require_gate is not None:
            check_gate(args.require_gate, args.package)
        switch = "--shadow" if args.shadow else "--activate"
        return exit_code(flash_hosts(connection(args), args.package, hosts, store_args, switch))
    except GateRefused as exc:
        sys.stderr.write(f"flash-model: gate: {exc}\n")
        return REFUSED
    except InventoryError as exc:
        sys.stderr.write(f"flash-model: {exc}\n")
        return 2


def main_rollback(argv: Sequence[str] | None = None) -> int:
    p = common_parser("rollback", "Switch devices back one model version and reload the agent.")
    p.add_argument("--name", help="model name (default: the only model in the device's store)")
    args = p.parse_args(argv)
    store_args = [*([args.name] if args.name else []), "--store", args.store, "--reload", args.reload]
    try:
        hosts = resolve_hosts(args)
    except InventoryError as exc:
        sys.stderr.write(f"rollback: {exc}\n")
        return 2
    conn, results = connection(args), []
    for host in hosts:
        command = conn.store_command("rollback", *store_args, *_config_arg(host))
        results.append(run_on_host(conn, host, command))
        _report(results[-1])
    return exit_code(results)
