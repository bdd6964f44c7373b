"""A real OpenSSH server on a free loopback port: the "device" for flashing tests.

It runs as root on this machine (tests run as root), so ``ssh`` to it executes commands as root
here, with a host key and a client key generated in the test's tmp dir. ``StrictModes no`` because
tmp dirs are not root-owned 0700 paths; ``UsePAM no`` because no PAM stack is needed for a key.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import free_port

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    identity: Path
    known_hosts: Path

    def ssh_args(self) -> list[str]:
        """Options for ``ssh``/``scp`` to reach this server non-interactively."""
        return [
            "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes",
            "-i", str(self.identity),
        ]  # fmt: skip

    def run(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *self.ssh_args(), "-p", str(self.port), f"{self.user}@{self.host}", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port} within {deadline_s}s")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    if not SSHD.exists() or shutil.which("ssh") is None:
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture runs the server as root")
    base = tmp_path / "sshd"
    base.mkdir()
    host_key, client_key = base / "host_ed25519", base / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = base / "authorized_keys"
    authorized.write_text((client_key.with_suffix(".pub")).read_text())
    port = free_port()
    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitUserEnvironment no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    log = (base / "sshd.log").open("wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc)
        yield SshServer("127.0.0.1", port, "root", client_key, known_hosts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
