"""A real PostgreSQL 15 server for tests: an ``initdb`` cluster in a temporary directory.

Fixtures:

- ``postgres``: one server on a free loopback port with a fresh database; ``.url`` is its DSN;
- ``postgres_factory(fsync=False)``: more of them (the benchmark wants ``fsync=True``);
- ``postgres_server`` (session): one server shared by many tests, each with ``new_database()``.

PostgreSQL refuses to run as root, and CI runs as root: the cluster then belongs to ``nobody``
and every command runs through ``runuser -u nobody``. The unix socket lives in the cluster's own
directory (never /var/run/postgresql). ``restart()`` keeps the port, for outage tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.paths import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
USER = "nobody"


class Postgres:
    """One cluster and one ``postgres`` process; ``url`` points at database ``db`` (user ``collector``)."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.fsync = fsync
        self.database = f"db_{uuid.uuid4().hex[:8]}"
        self.url = f"postgresql://collector@{HOST}:{self.port}/{self.database}"
        self.log_path = self.dir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_user = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
        if self._as_user:
            shutil.chown(self.dir, USER)
        self._run(BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--locale=C",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    def _run(self, *cmd: str | Path) -> None:
        done = subprocess.run([*self._as_user, *map(str, cmd)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stdout}{done.stderr}")

    def start(self, timeout: float = 30.0) -> Postgres:
        log = self.log_path.open("ab")
        cmd = [
            *self._as_user, str(BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.dir), "-c", f"listen_addresses={HOST}",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", "max_connections=200",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self._proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start in {timeout}s: {self.log_tail()}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(f"postgresql://postgres@{HOST}:{self.port}/postgres", autocommit=True) as db:
                if db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'collector'").fetchone() is None:
                    db.execute("CREATE ROLE collector LOGIN")
                if (
                    db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
                    is None
                ):
                    db.execute(f"CREATE DATABASE {self.database} OWNER collector")
        except psycopg.OperationalError:
            return False
        return True

    def new_database(self) -> str:
        """The URL of one more empty database on this server."""
        import psycopg

        name = f"db_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"postgresql://postgres@{HOST}:{self.port}/postgres", autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name} OWNER collector")
        return f"postgresql://collector@{HOST}:{self.port}/{name}"

    def stop(self, timeout: float = 20.0) -> None:
        """A fast shutdown (SIGINT: clients are disconnected, nothing committed is lost)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, 2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., Postgres]]:
    servers: list[Postgres] = []

    def make(*, fsync: bool = False) -> Postgres:
        server = Postgres(fsync=fsync)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One server for a whole session; tests take a fresh database each (``new_database()``)."""
    server = Postgres().start()
    yield server
    server.cleanup()


@pytest.fixture
def postgres(postgres_factory: Callable[..., Postgres]) -> Postgres:
    return postgres_factory()
