"""Operator side of ``deploy/flash-model`` and ``deploy/rollback``: one SSH session per host.

Per host, a single ``ssh`` call carries a tar stream of the package plus ``device_flash.py`` into
a fresh staging directory on the device and runs it there with the agent's interpreter; the
staging directory is removed when the remote shell exits, whatever happened. A dropped
connection stops the remote side before it touches the store; a damaged stream is caught by the
tree digest computed here and checked there. Hosts are flashed one after the other; fleets use
the Ansible playbook in deploy/ansible/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent import modelstore as ms
from agent.errors import ModelError
from deploy import inventory
from deploy.inventory import Host

DEVICE_SCRIPT = Path(__file__).with_name("device_flash.py")
DEFAULT_PYTHON = "/opt/inspection-agent/venv/bin/python"
SSH_FAILED = 255


@dataclass(frozen=True)
class Connection:
    """How to reach devices: known_hosts policy, timeouts, the interpreter to run on the device."""

    known_hosts: str | None = None
    connect_timeout_s: int = 10
    device_python: str = DEFAULT_PYTHON
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


@dataclass(frozen=True)
class HostResult:
    host: str
    ok: bool
    code: int
    step: str
    message: str

    def line(self) -> str:
        return f"{self.host}: {'OK' if self.ok else 'FAILED'} [{self.step}] {self.message}"


def remote_command(conn: Connection, device_args: Sequence[str]) -> str:
    """POSIX sh: unpack stdin into a fresh staging dir, run device_flash.py there, always clean up."""
    staging = shlex.quote(f"{conn.staging.rstrip('/')}/inspection-flash.XXXXXX")
    run = " ".join([conn.device_python, '"$d/device_flash.py"', *(shlex.quote(a) for a in device_args)])
    return (
        f"d=$(mktemp -d {staging}) || exit 3; trap 'rm -rf \"$d\"' EXIT; "
        f'tar -xf - -C "$d" || {{ echo "transfer: incomplete archive" >&2; exit 3; }}; '
        f'cd "$d" && {run}'
    )


def run_on_host(
    conn: Connection, host: Host, payload: dict[str, Path], device_args: Sequence[str]
) -> HostResult:
    """Send ``payload`` (archive name -> local path) and run ``device_flash.py`` with ``device_args``."""
    with tempfile.TemporaryFile() as bundle:
        with tarfile.open(fileobj=bundle, mode="w") as tar:
            tar.add(DEVICE_SCRIPT, arcname="device_flash.py")
            for arcname, path in payload.items():
                tar.add(path, arcname=arcname)
        bundle.seek(0)
        try:
            proc = subprocess.run(
                conn.ssh_argv(host, remote_command(conn, device_args)),
                stdin=bundle,
                capture_output=True,
                text=True,
                timeout=conn.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return HostResult(host.name, False, 5, "ssh", f"no answer within {conn.timeout_s:.0f}s")
    return _result(host, proc)


def _result(host: Host, proc: subprocess.CompletedProcess[str]) -> HostResult:
    lines = proc.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else None
    except ValueError:
        outcome = None
    if isinstance(outcome, dict):
        return HostResult(host.name, bool(outcome.get("ok")), proc.returncode, str(outcome.get("step")),
                          str(outcome.get("message")))  # fmt: skip
    errors = proc.stderr.strip().splitlines()
    reason = errors[-1] if errors else f"exit status {proc.returncode}"
    step = "ssh" if proc.returncode == SSH_FAILED else "transfer"
    return HostResult(host.name, False, proc.returncode or 1, step, reason)


def flash_hosts(
    conn: Connection, package: Path, hosts: Sequence[Host], device_args: Sequence[str]
) -> list[HostResult]:
    """Flash every host in turn; a tarball is unpacked once here so its digest can be checked there."""
    with tempfile.TemporaryDirectory() as work, ms.unpacked(package, Path(work)) as pkg:
        digest = ms.tree_digest(pkg)
        args = ["flash", "--package", "package", "--digest", digest, *device_args]
        results = []
        for host in hosts:
            result = run_on_host(conn, host, {"package": pkg}, [*args, *_config_arg(host)])
            _report(result)
            results.append(result)
        return results


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
    p.add_argument("--user", help="SSH user (default: your ssh config)")
    p.add_argument("--ssh-port", type=int, help="SSH port")
    p.add_argument("--identity", help="SSH private key")
    p.add_argument("--known-hosts", help="known_hosts file to check host keys against (default: accept-new)")
    p.add_argument("--config", default="/etc/inspection-agent/cam-01.yaml", help="agent config on the device")
    p.add_argument("--store", default="/var/lib/inspection-agent/models", help="model store on the device")
    p.add_argument("--reload", default="systemd", help="systemd | systemd:UNIT | pid:PIDFILE | none")
    p.add_argument("--device-python", default=DEFAULT_PYTHON, help="interpreter with the agent on the device")
    return p


def resolve_hosts(args: argparse.Namespace) -> list[Host]:
    hosts = [Host(name=h) for h in args.hosts]
    if args.inventory:
        hosts += inventory.load(args.inventory)
    if not hosts:
        raise inventory.InventoryError("no hosts: name at least one HOST or --inventory FILE")
    return [h.with_defaults(args.user, args.ssh_port, args.identity, args.config) for h in hosts]


def connection(args: argparse.Namespace) -> Connection:
    return Connection(known_hosts=args.known_hosts, device_python=args.device_python)


def main_flash(argv: Sequence[str] | None = None) -> int:
    p = common_parser(
        "flash-model", "Flash a model package onto devices over SSH, with validation and rollback.", "package"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the agent's verdict")
    p.add_argument("--keep", type=int, default=3, help="versions kept on the device")
    p.add_argument("--validate-cmd", help="device command replacing 'inspection-agent model validate'")
    p.add_argument("--state-file", help="model-state.json on the device (default: from the config)")
    args = p.parse_args(argv)
    device_args = ["--store", args.store, "--reload", args.reload, "--timeout", str(args.timeout)]
    device_args += ["--keep", str(args.keep)]
    device_args += ["--validate-cmd", args.validate_cmd] if args.validate_cmd else []
    device_args += ["--state-file", args.state_file] if args.state_file else []
    try:
        hosts = resolve_hosts(args)
        return exit_code(flash_hosts(connection(args), args.package, hosts, device_args))
    except (inventory.InventoryError, ModelError) as exc:
        sys.stderr.write(f"flash-model: {exc}\n")
        return 2


def main_rollback(argv: Sequence[str] | None = None) -> int:
    p = common_parser("rollback", "Switch devices back one model version and reload the agent.")
    p.add_argument("--name", help="model name (default: the only model in the device's store)")
    args = p.parse_args(argv)
    device_args = ["rollback", "--store", args.store, "--reload", args.reload]
    device_args += ["--name", args.name] if args.name else []
    try:
        hosts = resolve_hosts(args)
    except inventory.InventoryError as exc:
        sys.stderr.write(f"rollback: {exc}\n")
        return 2
    conn = connection(args)
    results = [run_on_host(conn, h, {}, [*device_args, *_config_arg(h)]) for h in hosts]
    for result in results:
        _report(result)
    return exit_code(results)
