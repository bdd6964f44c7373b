"""Every problem at once (a section's types and ranges together); secrets never echoed, whatever type."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.config import load_config
from agent.errors import ConfigError
from tests.support.agentproc import run_agent
from tests.unit.config.test_config import MINIMAL, write

SECRET = "86753091"


@pytest.mark.parametrize(
    "value", [SECRET, f"[{SECRET}]", f"{{x: {SECRET}}}", f"{SECRET}.5", "true", f"0x{SECRET}"]
)
def test_a_password_of_the_wrong_type_is_not_echoed_by_the_agent(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, MINIMAL.replace("qos: 1}", f"qos: 1, password: {value}}}")))
    text = str(err.value)
    assert "mqtt.password: must be a string" in text and "value not shown" in text
    assert SECRET not in text and "True" not in text and hex(int(SECRET, 16)) not in text


@pytest.mark.parametrize("value", [SECRET, f"[{SECRET}]", f"{SECRET}.5"])
def test_a_password_of_the_wrong_type_is_not_echoed_by_the_collector(tmp_path: Path, value: str) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(f"storage: {{root: s}}\nbroker: {{password: {value}}}\n")
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    assert "broker.password: must be a string" in str(err.value) and SECRET not in str(err.value)


def test_check_does_not_print_a_numeric_password(tmp_path: Path) -> None:
    done = run_agent(
        [
            "check",
            "--config",
            str(write(tmp_path, MINIMAL.replace("qos: 1}", f"qos: 1, password: {SECRET}}}"))),
        ]
    )
    assert done.returncode == 2 and "mqtt.password" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_range_errors_come_with_the_type_errors_of_the_same_section(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "mqtt: {host: 127.0.0.1, port: 1883, topic_prefix: inspection, qos: 1}",
        "mqtt: {host: 127.0.0.1, port: 70000, topic_prefix: 'a/#', qos: 1, keepalive_s: soon}",
    ).replace("inference: {budget_ms: 50}", "inference: {budget_ms: -5, overrun_ratio: lots}")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    found = "\n".join(err.value.problems)
    assert "mqtt.keepalive_s: must be" in found and "mqtt.port: must be between 1 and 65535" in found
    assert "mqtt.topic_prefix: must be non-empty" in found
    assert "inference.overrun_ratio: must be a number" in found
    assert "inference.budget_ms: must be greater than 0" in found
    assert "overrun_ratio: must be in (0, 1]" not in found  # no range check on a value that has no type


def test_the_collector_reports_range_and_type_errors_together(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text("storage: {root: s}\nlimits: {max_bytes: big, batch: 5000}\n")
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    found = "\n".join(err.value.problems)
    assert (
        "limits.max_bytes: must be an integer" in found
        and "limits.batch: must be between 1 and 1024" in found
    )
