"""Hosts to flash: from the command line, a YAML list, or an INI/Ansible-style inventory.

YAML::

    hosts:
      - host: 10.0.0.21
        user: root
        port: 22
        identity: ~/.ssh/line3
        config: /etc/inspection-agent/cam-01.yaml   # optional, per host

INI (the Ansible inventory in deploy/ansible/ works as is; ``[group]`` lines are ignored)::

    10.0.0.21 ansible_user=root ansible_port=22 ansible_ssh_private_key_file=~/.ssh/line3
    cam-02.line3 user=pi port=2222 config=/etc/inspection-agent/cam-02.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

_ALIASES = {
    "ansible_host": "address",
    "ansible_user": "user",
    "ansible_port": "port",
    "ansible_ssh_private_key_file": "identity",
    "inspection_config": "config",
}
_KEYS = {"host", "address", "user", "port", "identity", "config"}


class InventoryError(ValueError):
    """An inventory file that cannot be read; the message names the file and line."""


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
