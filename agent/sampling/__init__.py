"""Sampling unsure frames at the edge and sending them to the central collector for retraining.

``build_samplers`` is what the composition root calls; the sampler is a pipeline
``FrameObserver`` and its commands are registered with ``register_sampling_commands``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.config.schema import AgentConfig
from agent.errors import ConfigError
from agent.protocol.topics import Topics
from agent.publish import Sink
from agent.sampling.commands import register_sampling_commands
from agent.sampling.sampler import Sampler, Wire

__all__ = ["Sampler", "Wire", "build_samplers", "register_sampling_commands"]

if TYPE_CHECKING:
    from agent.sampling.presigned import PresignedUploader

SAMPLE_LOG = "samples.jsonl"


def build_samplers(cfg: AgentConfig, sink: Sink, topics: Topics) -> list[Sampler]:
    """The device's sampler in a list (empty when ``sampling.enabled`` is false): the composition
    root adds it to the observers and registers its commands without a branch of its own."""
    sampling = cfg.sampling
    if not sampling.enabled:
        return []
    wire = Wire(
        topic=topics.sample,
        qos=cfg.mqtt.qos,
        max_packet_bytes=cfg.mqtt.max_packet_bytes,
        mqtt5=cfg.mqtt.protocol == "5",
    )
    log_path = cfg.state_dir / SAMPLE_LOG if sampling.log_file else None
    uploader = _uploader(cfg, topics) if sampling.upload == "presigned" else None
    return [Sampler(sampling, sink=sink, wire=wire, device=cfg.device, log_path=log_path, uploader=uploader)]


def _uploader(cfg: AgentConfig, topics: Topics) -> PresignedUploader:
    """Presigned uploads need MQTT 5 (request/response); their own client id beside the agent's."""
    from agent.config import read_password
    from agent.mqtt import ClientSpec
    from agent.sampling.presigned import PresignedUploader

    m = cfg.mqtt
    if m.protocol != "5":
        raise ConfigError("sampling.upload: presigned needs mqtt.protocol 5 (request/response)")
    client_id = f"{m.client_id or cfg.device.id}-upload"
    spec = ClientSpec.from_mqtt(m, client_id, read_password(m, cfg.base_dir))
    return PresignedUploader(spec, m.host, m.port, topics.sample, cfg.sampling.upload_timeout_s)
