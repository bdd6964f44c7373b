"""Typed configuration sections. Validation lives here and in :mod:`agent.config.typed`; no I/O.

Every section is a frozen dataclass; unknown keys are rejected. Cross-field rules
are short ``_check`` methods returning ``(key, problem)`` pairs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.config.line import HomeAssistantConfig, IoConfig, ModbusConfig, OpcuaConfig, SparkplugConfig
from agent.config.observers import DriftConfig, HealthConfig, SamplingConfig, ShadowConfig
from agent.config.secret import Secret

Problems = list[tuple[str, str]]
_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")

SOURCE_KINDS = ("video", "dir", "glob", "synthetic", "v4l2", "rtsp", "http", "gst", "picamera2")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed ``camera.source``: its kind and what follows the prefix."""

    kind: Literal["video", "dir", "glob", "synthetic", "v4l2", "rtsp", "http", "gst", "picamera2"]
    target: str

    @property
    def finite(self) -> bool:
        return self.kind in ("video", "dir", "glob")


def parse_source(text: str) -> SourceSpec:
    """``video:PATH``, ``dir:PATH``, ``glob:PATTERN``, ``synthetic:[seed]``, ``v4l2:/dev/videoN|N``,
    ``rtsp://…``, ``http(s)://…``, ``gst:PIPELINE``, ``picamera2:N``. Raise ValueError when unknown."""
    if text.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", text)
    if text.startswith(("http://", "https://")):
        return SourceSpec("http", text)
    kind, sep, target = text.partition(":")
    if not sep or kind not in SOURCE_KINDS:
        raise ValueError(
            f"unknown camera source {text!r} (use video:PATH, dir:PATH, glob:PATTERN, synthetic:, "
            "v4l2:/dev/videoN, rtsp://…, http://…, gst:PIPELINE or picamera2:N)"
        )
    if kind in ("video", "dir", "glob", "gst") and not target:
        raise ValueError(
            f"camera source {kind}: needs a {'pipeline' if kind == 'gst' else 'path'} after the colon"
        )
    return SourceSpec(kind, target)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str
    site: str
    line: str
    area: str | None = None  # the ISA-95 area, for an mqtt.topic_root template that has {area}

    def _check(self) -> Problems:
        return [
            (name, "may only contain letters, digits, '_', '-' and '.' (it is part of MQTT topics)")
            for name in ("id", "site", "line", "area")
            if getattr(self, name) is not None and not _TOPIC_SAFE.match(getattr(self, name))
        ]


@dataclass(frozen=True, slots=True)
class Picamera2Config:
    width: int = 1280
    height: int = 960
    format: str = "RGB888"
    exposure_us: int | None = None
    analogue_gain: float | None = None


@dataclass(frozen=True, slots=True)
class CameraConfig:
    source: str
    fps: float = 30.0
    realtime: bool = True
    loop: bool = False
    mode: Literal["continuous", "trigger"] = "continuous"
    width: int | None = None  # requested capture size for V4L2/OpenCV devices
    height: int | None = None
    queue_size: int = 8  # lossless queue between capture and inference for file replays
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    read_timeout_s: float = 5.0  # a capture call taking longer is a stuck camera
    picamera2: Picamera2Config = field(default_factory=Picamera2Config)
    # Hand-off to the pipeline: None = automatic (live for devices, streams and synthetic, lossless
    # for file replays); true marks a realtime replay as a live camera (latest frame wins, drops).
    live: bool | None = None
    synthetic_defect_rate: float = 0.3  # share of defective parts drawn by the synthetic: source
    # dir:/glob: replays check each image's header against this before decoding (40 MP: ~120 MB
    # decoded); a larger one is skipped and counted, never decoded.
    max_image_pixels: int = 40_000_000

    @property
    def spec(self) -> SourceSpec:
        return parse_source(self.source)

    def _check(self) -> Problems:
        problems: Problems = []
        try:
            parse_source(self.source)
        except ValueError as exc:
            problems.append(("source", str(exc)))
        if self.fps <= 0:
            problems.append(("fps", "must be greater than 0"))
        if self.queue_size < 1:
            problems.append(("queue_size", "must be at least 1"))
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            problems.append(("reconnect_max_s", "backoff needs 0 < reconnect_initial_s <= reconnect_max_s"))
        if not 0.0 <= self.synthetic_defect_rate <= 1.0:
            problems.append(("synthetic_defect_rate", "must be between 0 and 1"))
        if self.max_image_pixels < 1:
            problems.append(("max_image_pixels", "must be at least 1"))
        return problems


@dataclass(frozen=True, slots=True)
class ModelConfig:
    path: str
    runtime: Literal["auto", "tflite", "onnx"] = "auto"
    threads: int = 1
    # TFLite delegates to load, e.g. ["libedgetpu.so.1"] for a Coral; empty: XNNPACK on the CPU.
    delegates: list[str] = field(default_factory=list)
    # onnxruntime providers in order of preference; only those installed are used, and a missing
    # one is an error unless it is CPUExecutionProvider's fallback list.
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    # Directory that holds model packages; remote reload-model commands may only name paths inside it.
    store: str | None = None
    require_signature: bool = False
    trusted_keys: list[str] = field(default_factory=list)  # paths to ed25519 public keys (PEM or raw hex)
    fallback: str | None = None  # a smaller model package for the `fallback` overrun policy
    # A second package run beside the active one on live frames, in the time the budget leaves free
    # (agent/shadow; settings in the `shadow` section). `model promote` makes it the active model.
    shadow: str | None = None
    warmup_runs: int = 3

    def _check(self) -> Problems:
        problems: Problems = []
        if self.threads < 1:
            problems.append(("threads", "must be at least 1"))
        if self.require_signature and not self.trusted_keys:
            problems.append(("trusted_keys", "require_signature is on but no trusted key is configured"))
        return problems


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    budget_ms: float | None = None  # None: the manifest's budget_ms
    # Sustained overrun: over `overrun_window` inspected frames, more than `overrun_ratio` over budget.
    overrun_window: int = 30
    overrun_ratio: float = 0.5
    overrun_policy: Literal["none", "skip", "fallback"] = "none"
    skip_every: int = 2  # the skip policy inspects every Nth frame
    hang_timeout_s: float = 5.0  # an inference call taking longer marks the agent degraded
    rollback_frames: int = 20  # frames a new model must survive after a hot swap
    # auto: when the inference thread is the bottleneck, the agent's other threads get a lower
    # CPU priority (agent/pipeline/priority.py); equal: every thread keeps its priority.
    priority: Literal["auto", "equal"] = "auto"

    def _check(self) -> Problems:
        problems: Problems = []
        if self.budget_ms is not None and self.budget_ms <= 0:
            problems.append(("budget_ms", "must be greater than 0"))
        if not 0.0 < self.overrun_ratio <= 1.0:
            problems.append(("overrun_ratio", "must be in (0, 1]"))
        if self.overrun_window < 1 or self.skip_every < 2:
            problems.append(("overrun_window", "needs overrun_window >= 1 and skip_every >= 2"))
        return problems


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # Turning hostname verification off must be explicit, and is logged as a warning at start.
    insecure_skip_verify: bool = False

    def _check(self) -> Problems:
        if (self.cert_file is None) != (self.key_file is None):
            return [("cert_file", "cert_file and key_file go together")]
        return []


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "inspection"
    # The device's topic root as a template of {prefix} {site} {area} {line} {device}, for plants
    # with an ISA-95 / Unified Namespace, e.g. "{prefix}/{site}/{area}/{line}/{device}".
    # None: {prefix}/{site}/{line}/{device} (what the collector subscribes to).
    topic_root: str | None = None
    qos: Literal[0, 1] = 1  # for defect events, samples and other events
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None  # default: {prefix}-{site}-{line}-{device}
    keepalive_s: int = 30
    username: str | None = None
    password: Secret | None = None  # use ${ENV}; or password_file / password_credential
    password_file: str | None = None
    password_credential: str | None = None  # a systemd LoadCredential= name
    tls: TlsConfig | None = None
    publish_results: bool = True  # every frame's result on .../result
    results_qos: Literal[0, 1] = 0
    max_packet_bytes: int = 262144  # keep below the broker's message_size_limit
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 10.0

    def _check(self) -> Problems:
        problems: Problems = []
        if not 0 < self.port < 65536:
            problems.append(("port", "must be between 1 and 65535"))
        if (
            not self.topic_prefix
            or any(c in self.topic_prefix for c in "#+\0")
            or self.topic_prefix.endswith("/")
        ):
            problems.append(("topic_prefix", "must be non-empty, without '#', '+' or a trailing '/'"))
        sources = [
            self.password is not None,
            self.password_file is not None,
            self.password_credential is not None,
        ]
        if sum(sources) > 1:
            problems.append(("password", "give only one of password, password_file, password_credential"))
        if self.max_packet_bytes < 1024:
            problems.append(("max_packet_bytes", "must be at least 1024"))
        if self.topic_root is not None and (why := check_topic_template(self.topic_root)):
            problems.append(("topic_root", why))
        if self.reconnect_min_s <= 0 or self.reconnect_max_s < self.reconnect_min_s:
            problems.append(("reconnect_max_s", "backoff needs 0 < reconnect_min_s <= reconnect_max_s"))
        return problems


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    # "{device}" is replaced by device.id, so instances on one host never share an outbox.
    path: str = "/var/lib/inspection-agent/{device}/outbox.db"
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0

    def _check(self) -> Problems:
        return [("max_bytes", "must be at least 64 KiB")] if self.max_bytes < 65536 else []


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"  # auto: JSON unless stderr is a terminal


@dataclass(frozen=True, slots=True)
class StateConfig:
    # Where the agent keeps what must survive a restart: model-state.json (hot-swap outcome,
    # read by deploy/flash-model), health.json (read by `inspection-agent status`).
    # "{device}" is replaced by device.id: one directory per camera instance on a host.
    dir: str = "/var/lib/inspection-agent/{device}"


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class WebAuthConfig:
    users_file: str | None = None  # written by `inspection-agent web adduser NAME`; None: loopback only
    secret_file: str | None = None  # session signing key; default {state.dir}/web-secret.key
    session_max_age_s: int = 12 * 3600
    login_max_failures: int = 5  # per user name and per client address ...
    login_window_s: int = 300  # ... within this window; more are refused (429) and logged


@dataclass(frozen=True, slots=True)
class WebTlsFiles:
    """``web.tls``: the console over HTTPS (PEM files; relative paths from the config's directory)."""

    cert_file: str  # the server certificate, chain included
    key_file: str


@dataclass(frozen=True, slots=True)
class WebConsoleConfig:
    """``web:`` — the technician's console in the agent (docs/console.md); off unless ``listen`` is set."""

    listen: str | None = None  # HOST:PORT, e.g. "127.0.0.1:8080"; port 0 picks a free one (tests)
    auth: WebAuthConfig = field(default_factory=WebAuthConfig)
    preview_fps: float = 5.0  # the live view is encoded at most this often, only while someone watches
    max_viewers: int = 4  # live streams at once; more are answered 503
    defects_kept: int = 24  # recent defects kept in memory (thumbnail + frame JPEG)
    max_upload_bytes: int = 16 * 1024 * 1024  # POST /api/classify body limit (413 above it)
    max_upload_pixels: int = 40_000_000  # width x height read from the header before decoding
    tls: WebTlsFiles | None = None  # HTTPS; session cookies then carry Secure, and HSTS is sent

    @property
    def host(self) -> str:
        return (self.listen or "").rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int((self.listen or ":0").rpartition(":")[2])

    def _check(self) -> Problems:
        if self.listen is None:
            return []
        problems: Problems = []
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            problems.append(("listen", "must be HOST:PORT, e.g. 127.0.0.1:8080"))
        elif self.host not in LOOPBACK_HOSTS and self.auth.users_file is None:
            problems.append((
                "auth.users_file",
                f"listen {self.listen} is not loopback: set web.auth.users_file "
                "(inspection-agent web adduser NAME) or listen on 127.0.0.1",
            ))  # fmt: skip
        if not 0.2 <= self.preview_fps <= 30:
            problems.append(("preview_fps", "must be between 0.2 and 30"))
        if self.max_viewers < 1 or self.defects_kept < 1:
            problems.append(("max_viewers", "max_viewers and defects_kept must be at least 1"))
        if self.max_upload_bytes < 1024 or self.max_upload_pixels < 64 * 64:
            problems.append(("max_upload_bytes", "the upload limits are too small to hold an image"))
        return problems


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device: DeviceConfig
    camera: CameraConfig
    model: ModelConfig
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    log: LogConfig = field(default_factory=LogConfig)
    state: StateConfig = field(default_factory=StateConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    web: WebConsoleConfig = field(default_factory=WebConsoleConfig)  # the device console (docs/console.md)
    # The line integration (docs/line.md): digital I/O, PLC/SCADA protocols, Home Assistant.
    io: IoConfig = field(default_factory=IoConfig)
    modbus: ModbusConfig = field(default_factory=ModbusConfig)
    opcua: OpcuaConfig = field(default_factory=OpcuaConfig)
    sparkplug: SparkplugConfig = field(default_factory=SparkplugConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    # Directory of the config file; relative paths in the file are relative to it.
    base_dir: Path = field(default=Path("."), init=False, compare=False)

    def resolve(self, path: str) -> Path:
        """A path from the config, made absolute against the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def state_dir(self) -> Path:
        """``state.dir`` with ``{device}`` expanded, absolute."""
        return self.resolve(self.state.dir.replace("{device}", self.device.id))

    @property
    def outbox_settings(self) -> OutboxConfig:
        """The outbox section with ``{device}`` expanded and the path made absolute."""
        path = self.resolve(self.outbox.path.replace("{device}", self.device.id))
        return dataclasses.replace(self.outbox, path=str(path))

    def model_settings(self) -> ModelConfig:
        """The model section with its key paths made absolute (what load_model needs)."""
        keys = [str(self.resolve(k)) for k in self.model.trusted_keys]
        return dataclasses.replace(self.model, trusted_keys=keys)

    @property
    def topic_root(self) -> str:
        """The root of every topic this device publishes (``mqtt.topic_root`` filled in)."""
        return render_topic_root(
            self.mqtt.topic_root or DEFAULT_TOPIC_ROOT, self.mqtt.topic_prefix, self.device
        )

    def _check(self) -> Problems:
        problems: Problems = []
        if self.mqtt.topic_root and "{area}" in self.mqtt.topic_root and self.device.area is None:
            problems.append(("device.area", "mqtt.topic_root uses {area}: set device.area"))
        if self.io.trigger is not None and self.camera.mode != "trigger":
            problems.append(("io.trigger", "a trigger input needs camera.mode: trigger"))
        return problems


DEFAULT_TOPIC_ROOT = "{prefix}/{site}/{line}/{device}"
TOPIC_FIELDS = ("prefix", "site", "area", "line", "device")
_FIELD = re.compile(r"\{([^{}]*)\}")


def check_topic_template(template: str) -> str | None:
    """Why ``template`` cannot be a topic root, or None when it can."""
    names = _FIELD.findall(template)
    unknown = sorted(set(names) - set(TOPIC_FIELDS))
    if unknown:
        return f"unknown field(s) {unknown} (use {{{'}, {'.join(TOPIC_FIELDS)}}})"
    if "device" not in names:
        return "must contain {device} (every device needs its own topics)"
    if (
        any(c in template for c in "#+\0")
        or template.startswith("/")
        or template.endswith("/")
        or "//" in template
    ):
        return "must not contain '#', '+', an empty level or a leading/trailing '/'"
    return None


def render_topic_root(template: str, prefix: str, device: DeviceConfig) -> str:
    values = {"prefix": prefix, "site": device.site, "area": device.area or "", "line": device.line}
    return _FIELD.sub(lambda m: values.get(m.group(1), device.id), template)
