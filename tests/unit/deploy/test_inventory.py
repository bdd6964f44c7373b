"""Inventory files for flash-model: YAML lists and INI/Ansible lines, and their bad forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.fleet import Host, InventoryError, load
from tests.support.paths import REPO


def test_yaml_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "hosts:\n  - host: cam-01\n    address: 10.0.0.21\n    user: root\n    port: 2222\n"
        "    config: /etc/inspection-agent/cam-01.yaml\n  - cam-02\n"
    )
    hosts = load(inv)
    assert hosts[0] == Host("cam-01", "10.0.0.21", "root", 2222, None, "/etc/inspection-agent/cam-01.yaml")
    assert hosts[0].target == "root@10.0.0.21"
    assert hosts[1] == Host("cam-02")


def test_ini_inventory_with_ansible_names(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[line3]\n# comment\ncam-01 ansible_host=10.0.0.21 ansible_user=pi ansible_port=22 "
        "ansible_ssh_private_key_file=~/.ssh/line3 ansible_python_interpreter=/usr/bin/python3\n"
        "cam-02 user=root config=/etc/inspection-agent/cam-02.yaml\n"
    )
    hosts = load(inv)
    assert hosts[0] == Host("cam-01", "10.0.0.21", "pi", 22, "~/.ssh/line3", None)
    assert hosts[1].config == "/etc/inspection-agent/cam-02.yaml"


def test_the_shipped_ansible_inventory_reads(tmp_path: Path) -> None:
    hosts = load(REPO / "deploy" / "ansible" / "inventory.ini")
    assert hosts and all(h.user for h in hosts)


def test_command_line_fills_what_the_inventory_left_unset() -> None:
    host = Host("cam-01", port=2222).with_defaults("root", 22, "~/.ssh/k", "/etc/x.yaml")
    assert (host.user, host.port, host.identity, host.config) == ("root", 2222, "~/.ssh/k", "/etc/x.yaml")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("h.yml", "hosts: []\n", "non-empty list"),
        ("h.yml", "hosts: [\n", "not valid YAML"),
        ("h.yml", "hosts:\n  - host: a\n    colour: red\n", "unknown keys: colour"),
        ("h.ini", "cam-01 port=abc\n", "h.ini:1: port 'abc' is not a number"),
        ("h.ini", "cam-01 port=70000\n", "out of range"),
        ("h.ini", "cam-01 nonsense\n", "expected key=value"),
        ("h.ini", "[empty]\n", "no hosts"),
    ],
)
def test_bad_inventories_are_refused_with_file_and_line(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    inv = tmp_path / name
    inv.write_text(text)
    with pytest.raises(InventoryError, match=problem):
        load(inv)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load(tmp_path / "nope.ini")
