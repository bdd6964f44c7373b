"""Configuration: one YAML file, validated once at start into typed, frozen sections."""

from __future__ import annotations

import os
from pathlib import Path

from agent.config.loader import read_yaml
from agent.config.schema import AgentConfig, MqttConfig
from agent.config.secret import Secret
from agent.config.typed import build
from agent.errors import ConfigError

__all__ = ["AgentConfig", "ConfigError", "Secret", "load_config", "read_password"]


def load_config(path: str | Path) -> AgentConfig:
    """Load and validate ``path``; raise :class:`ConfigError` listing every problem."""
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.filename}:1: (top level): must be a mapping of sections")
    cfg, problems = build(AgentConfig, doc.data, doc.filename, doc.line_of)
    problems = sorted(doc.problems + problems, key=_line_number)
    if problems or cfg is None:
        raise ConfigError(problems)
    object.__setattr__(cfg, "base_dir", Path(path).resolve().parent)
    return cfg


def read_password(mqtt: MqttConfig, base_dir: Path) -> Secret | None:
    """The MQTT password from the config, a file, or a systemd credential (``$CREDENTIALS_DIRECTORY``)."""
    if mqtt.password is not None:
        return mqtt.password
    if mqtt.password_file is not None:
        path = Path(mqtt.password_file)
        return _read_secret_file(path if path.is_absolute() else base_dir / path, "mqtt.password_file")
    if mqtt.password_credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                "mqtt.password_credential: $CREDENTIALS_DIRECTORY is not set "
                "(use LoadCredential= in the unit)"
            )
        return _read_secret_file(Path(directory) / mqtt.password_credential, "mqtt.password_credential")
    return None


def _read_secret_file(path: Path, key: str) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc


def _line_number(problem: str) -> int:
    parts = problem.split(":", 2)
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0
