"""Config: the minimal example loads, every kind of problem is reported with file:line: key.path."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, read_password
from agent.config.schema import parse_source
from agent.errors import ConfigError

MINIMAL = """\
device: {id: cam-01, site: plant-a, line: line-3}
camera: {source: "video:/path/clip.mp4", fps: 30, realtime: true, loop: false}
model: {path: models/demo-defects/1.0.0, runtime: auto, threads: 1}
inference: {budget_ms: 50}
mqtt: {host: 127.0.0.1, port: 1883, topic_prefix: inspection, qos: 1}
outbox: {path: /var/lib/inspection-agent/outbox.db}
log: {level: info, format: json}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_minimal_example_from_the_issue_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.device.id == "cam-01"
    assert cfg.camera.spec.kind == "video" and cfg.camera.spec.target == "/path/clip.mp4"
    assert cfg.inference.budget_ms == 50.0
    assert cfg.topic_root == "inspection/plant-a/line-3/cam-01"
    assert cfg.resolve(cfg.model.path) == tmp_path / "models/demo-defects/1.0.0"


def test_unknown_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("log: {level: info, format: json}", "log: {level: info, format: json, colour: 1}")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/agent.yaml:7: log.colour: unknown key (known keys: format, level)"
    ]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = """\
device: {id: cam-01, site: plant-a}
camera:
  source: "video:/x.mp4"
  fps: fast
model: {path: m, runtime: tpu}
mqtt: {port: "x"}
"""
    found = problems(tmp_path, text)
    name = f"{tmp_path}/agent.yaml"
    assert f"{name}:1: device.line: missing required key (a string)" in found
    assert f"{name}:4: camera.fps: must be a number, got str 'fast'" in found
    assert f"{name}:5: model.runtime: must be one of 'auto', 'tflite', 'onnx', got 'tpu'" in found
    assert f"{name}:6: mqtt.port: must be an integer, got str 'x'" in found


def test_missing_section_is_reported(tmp_path: Path) -> None:
    text = "device: {id: a, site: b, line: c}\nmodel: {path: m}\n"
    assert any("camera: missing required key" in p for p in problems(tmp_path, text))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "device: {id: a\ncamera: [\n")
    assert problem.startswith(f"{tmp_path}/agent.yaml:") and "malformed YAML" in problem


def test_cross_field_rules(tmp_path: Path) -> None:
    text = MINIMAL.replace('source: "video:/path/clip.mp4"', 'source: "ftp://cam"').replace(
        "budget_ms: 50", "budget_ms: -1"
    )
    found = problems(tmp_path, text)
    assert any("camera.source: unknown camera source 'ftp://cam'" in p for p in found)
    assert any("inference.budget_ms: must be greater than 0" in p for p in found)


def test_topic_unsafe_device_id_is_rejected(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.replace("id: cam-01", "id: cam/01"))
    assert found == [
        f"{tmp_path}/agent.yaml:1: device.id: may only contain letters, digits, '_', '-' and '.' "
        "(it is part of MQTT topics)"
    ]


def test_secret_from_environment_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_PW", "hunter2")
    cfg = load_config(write(tmp_path, MINIMAL.replace("qos: 1}", 'qos: 1, password: "${MQTT_PW}"}')))
    assert cfg.mqtt.password is not None and cfg.mqtt.password.reveal() == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.mqtt)


def test_unset_environment_variable_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    found = problems(tmp_path, MINIMAL.replace("qos: 1}", 'qos: 1, password: "${NOPE_PW}"}'))
    assert found == [f"{tmp_path}/agent.yaml:5: mqtt.password: environment variable NOPE_PW is not set"]


def test_password_from_file_and_from_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    cfg = load_config(write(tmp_path, MINIMAL.replace("qos: 1}", "qos: 1, password_file: pw}")))
    secret = read_password(cfg.mqtt, cfg.base_dir)
    assert secret is not None and secret.reveal() == "from-file"

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = load_config(
        write(tmp_path, MINIMAL.replace("qos: 1}", "qos: 1, password_credential: mqtt-password}"))
    )
    secret = read_password(cfg.mqtt, cfg.base_dir)
    assert secret is not None and secret.reveal() == "from-credential"


def test_two_password_sources_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL.replace("qos: 1}", "qos: 1, password: x, password_file: y}"))
    assert any("give only one of password" in p for p in found)


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("video:/a.mp4", "video", "/a.mp4"),
        ("dir:frames", "dir", "frames"),
        ("synthetic:", "synthetic", ""),
        ("v4l2:/dev/video0", "v4l2", "/dev/video0"),
        ("rtsp://10.0.0.2/stream", "rtsp", "rtsp://10.0.0.2/stream"),
        ("http://cam/mjpg", "http", "http://cam/mjpg"),
        ("gst:videotestsrc ! appsink", "gst", "videotestsrc ! appsink"),
        ("picamera2:0", "picamera2", "0"),
    ],
)
def test_every_camera_source_form_parses(text: str, kind: str, target: str) -> None:
    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)
