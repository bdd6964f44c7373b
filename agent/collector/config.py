"""The collector's own config file, validated by the agent's strict validator (agent/config/typed.py).

Example (docs/collector.md has every key)::

    broker: {host: broker.plant, port: 8883, tls: {ca_file: ca.pem}, username: collector,
             password_credential: mqtt-password}
    subscribe: {prefix: inspection, sites: "+", shared_group: collectors}
    storage: {root: /var/lib/inspection-collector}
    limits: {max_bytes: 1048576}
    devices: {allowed_prefixes: [cam-]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.collector.review.config import ReviewConfig
from agent.config import read_password
from agent.config.loader import read_yaml
from agent.config.observers import AccuracyConfig
from agent.config.schema import LogConfig, MqttConfig, Problems, TlsConfig
from agent.config.secret import Secret
from agent.config.typed import build
from agent.errors import ConfigError
from agent.web.config import WebConfig

_LEVEL = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: TlsConfig | None = None
    username: str | None = None
    password: Secret | None = None  # use ${ENV}; or password_file / password_credential
    password_file: str | None = None
    password_credential: str | None = None  # a systemd LoadCredential= name
    # Fixed and unique per collector: the broker keeps its session (subscription and unacknowledged
    # messages) under this id for session_expiry_s, so a restarted collector loses nothing.
    client_id: str = "inspection-collector"
    session_expiry_s: int = 86400
    keepalive_s: int = 30
    receive_maximum: int = (
        1024  # unacknowledged messages in flight to us: >= 4 batches keeps both stages busy
    )
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def _check(self) -> Problems:
        problems: Problems = []
        if not 0 < self.port < 65536:
            problems.append(("port", "must be between 1 and 65535"))
        if sum(x is not None for x in (self.password, self.password_file, self.password_credential)) > 1:
            problems.append(("password", "give only one of password, password_file, password_credential"))
        if not self.client_id or any(c in self.client_id for c in "#+/\0"):
            problems.append(("client_id", "must be non-empty, without '#', '+', '/'"))
        if self.session_expiry_s < 0:
            problems.append(("session_expiry_s", "must be 0 or more"))
        if not 1 <= self.receive_maximum <= 65535:
            problems.append(("receive_maximum", "must be between 1 and 65535"))
        return problems


@dataclass(frozen=True, slots=True)
class SubscribeConfig:
    prefix: str = "inspection"  # the agents' mqtt.topic_prefix
    sites: list[str] | str = "+"  # '+' for every site, or a list of site names
    shared_group: str | None = "collectors"  # $share/{group}/…: collectors of one group split the load
    samples: bool = True
    defects: bool = True  # defect events, for `collector stats`

    @property
    def site_list(self) -> list[str]:
        return [self.sites] if isinstance(self.sites, str) else list(self.sites)

    def _check(self) -> Problems:
        problems: Problems = []
        if not self.prefix or any(c in self.prefix for c in "#+\0") or self.prefix.strip("/") != self.prefix:
            problems.append(("prefix", "must be non-empty, without '#', '+' or a leading/trailing '/'"))
        bad = [s for s in self.site_list if s != "+" and not _LEVEL.match(s)]
        if bad or not self.site_list:
            problems.append(("sites", "must be '+' or a list of site names (letters, digits, '_', '-', '.')"))
        if self.shared_group is not None and not _LEVEL.match(self.shared_group):
            problems.append(("shared_group", "may only contain letters, digits, '_', '-', '.'"))
        if not (self.samples or self.defects):
            problems.append(("samples", "subscribe to samples, defects or both"))
        return problems


@dataclass(frozen=True, slots=True)
class S3Config:
    """An S3-compatible bucket (docs/collector.md#scaling); secret key: ``${ENV}``, a file or a credential."""

    bucket: str
    endpoint: str | None = None  # http(s)://host:port; None: AWS S3 of ``region``
    region: str = "us-east-1"
    prefix: str = ""  # keys are {prefix}/{model}/{version}/…
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    access_key: str | None = None  # None: boto3's usual chain (AWS_ACCESS_KEY_ID, instance role, …)
    secret_key: Secret | None = None
    secret_key_file: str | None = None
    secret_key_credential: str | None = None  # a systemd LoadCredential= name
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    presign_expiry_s: int = 600  # how long an agent's presigned upload URL stays valid

    def _check(self) -> Problems:
        problems: Problems = []
        if not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", self.bucket):
            problems.append(
                ("bucket", "must be a valid bucket name (3-63 lowercase letters, digits, '.', '-')")
            )
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            problems.append(("endpoint", "must start with http:// or https://"))
        if (
            sum(x is not None for x in (self.secret_key, self.secret_key_file, self.secret_key_credential))
            > 1
        ):
            problems.append(
                ("secret_key", "give only one of secret_key, secret_key_file, secret_key_credential")
            )
        if not 10 <= self.presign_expiry_s <= 7 * 86400:
            problems.append(("presign_expiry_s", "must be between 10 and 604800"))
        return problems


@dataclass(frozen=True, slots=True)
class StorageConfig:
    root: str | None = None  # local: {root}/{model}/{version}/unlabeled/{label}/{id}.jpg, {root}/quarantine/…
    # sqlite:///path or a path (default {root}/index.db), or postgresql://user@host/db (shared by collectors)
    index: str | None = None
    backend: Literal["local", "s3"] = "local"
    s3: S3Config | None = None

    def _check(self) -> Problems:
        problems: Problems = []
        if self.backend == "s3" and self.s3 is None:
            problems.append(("s3", "backend s3 needs an s3 section (bucket, endpoint, …)"))
        if self.root is None and (self.backend == "local" or self.index is None):
            problems.append(("root", "required for the local backend and for the default index"))
        return problems


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_bytes: int = 1024 * 1024  # a larger message is quarantined without being decoded
    max_meta_bytes: int = 64 * 1024
    # Checked from the JPEG header before decoding: a few hundred bytes may claim 65000x65000.
    max_pixels: int = 40_000_000
    max_upload_bytes: int = 32 * 1024 * 1024  # a full-resolution presigned upload (sampling.upload)
    batch: int = 128  # messages made durable (one index commit) and acknowledged together

    def _check(self) -> Problems:
        problems: Problems = []
        if self.max_bytes < 1024 or self.max_meta_bytes < 256:
            problems.append(("max_bytes", "needs max_bytes >= 1024 and max_meta_bytes >= 256"))
        if not 1 <= self.max_pixels <= 2**31:
            problems.append(("max_pixels", "must be between 1 and 2147483648"))
        if not 1 <= self.batch <= 1024:
            problems.append(("batch", "must be between 1 and 1024"))
        return problems


@dataclass(frozen=True, slots=True)
class DevicesConfig:
    allowed_prefixes: list[str] = field(default_factory=list)  # empty: every device is accepted

    def allowed(self, device: str) -> bool:
        return not self.allowed_prefixes or device.startswith(tuple(self.allowed_prefixes))


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    storage: StorageConfig
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    subscribe: SubscribeConfig = field(default_factory=SubscribeConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    log: LogConfig = field(default_factory=LogConfig)
    stats_interval_s: float = 60.0  # how often the running collector logs its counters
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)  # measured line accuracy
    web: WebConfig | None = None  # the review web app (docs/collector.md#review); off when absent
    review: ReviewConfig = field(default_factory=ReviewConfig)
    base_dir: Path = field(default=Path("."), init=False, compare=False)

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def root(self) -> Path:
        return self.resolve(self.storage.root or ".")

    @property
    def index_path(self) -> Path:
        """The SQLite index file (meaningless for a PostgreSQL index: see ``index_location``)."""
        index = self.storage.index
        if index and index.startswith("sqlite://"):
            return Path(index.removeprefix("sqlite://"))
        return self.resolve(index) if index and "://" not in index else self.root / "index.db"

    @property
    def index_location(self) -> str | Path:
        """What :class:`~agent.collector.index.Index` opens: a PostgreSQL URL, or the SQLite file."""
        index = self.storage.index
        return index if index and index.startswith(("postgresql://", "postgres://")) else self.index_path


def load_collector_config(path: str | Path) -> CollectorConfig:
    """Load and validate ``path``; raise :class:`ConfigError` listing every problem with file:line."""
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.filename}:1: (top level): must be a mapping of sections")
    cfg, problems = build(CollectorConfig, doc.data, doc.filename, doc.line_of)
    problems = doc.problems + problems
    if problems or cfg is None:
        raise ConfigError(problems)
    object.__setattr__(cfg, "base_dir", Path(path).resolve().parent)
    return cfg


def s3_secret_key(cfg: CollectorConfig) -> Secret | None:
    """The S3 secret key from the config (``${ENV}``), a file or a systemd credential."""
    s3 = cfg.storage.s3
    if s3 is None:
        return None
    holder = MqttConfig(
        password=s3.secret_key, password_file=s3.secret_key_file, password_credential=s3.secret_key_credential
    )
    return read_password(holder, cfg.base_dir)


def broker_password(cfg: CollectorConfig) -> Secret | None:
    """The broker password from the config, a file or a systemd credential (as the agent reads its own)."""
    b = cfg.broker
    holder = MqttConfig(
        password=b.password, password_file=b.password_file, password_credential=b.password_credential
    )
    return read_password(holder, cfg.base_dir)
