"""``inspection-agent check --config PATH``: validate config, model, camera and broker; list every problem.

Exit 0 when everything is usable, 1 when something is not (each problem on its own line),
2 when the config itself is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, load_config, read_password
from agent.errors import AgentError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "check", help="validate config, model and broker reachability"
    )
    p.add_argument("--config", required=True)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the broker")
    p.add_argument(
        "--save-frame", metavar="PATH", type=Path,
        help="write the camera's frame to PATH (.jpg or .png) to look at without a browser",
    )  # fmt: skip
    p.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)  # a ConfigError lists every config problem and exits 2
    checks: list[tuple[str, Callable[[], str]]] = [
        ("model", lambda: _model(cfg)),
        ("fallback model", lambda: _fallback(cfg)),
        ("camera", lambda: _camera(cfg, args.save_frame)),
        ("credentials", lambda: _credentials(cfg)),
        ("broker", lambda: _broker(cfg, args.timeout)),
    ]
    failures = 0
    for name, probe in checks:
        try:
            detail = probe()
        except (AgentError, OSError) as exc:
            failures += 1
            sys.stdout.write(f"FAIL {name}: {exc}\n")
        else:
            sys.stdout.write(f"ok   {name}: {detail}\n")
    return 1 if failures else 0


def _model(cfg: AgentConfig) -> str:
    from agent.model.loaded import load_model

    model = load_model(str(cfg.resolve(cfg.model.path)), cfg.model_settings(), warmup=True)
    try:
        d = model.describe()
        return f"{d['name']} {d['version']} ({d['runtime']}, {d['task']}, sha256 {d['sha256'][:12]}…)"
    finally:
        model.close()


def _fallback(cfg: AgentConfig) -> str:
    if cfg.model.fallback is None:
        return "none configured"
    from agent.model.loaded import load_model

    model = load_model(str(cfg.resolve(cfg.model.fallback)), cfg.model_settings(), warmup=False)
    model.close()
    return f"{model.name} {model.version}"


def _camera(cfg: AgentConfig, save: Path | None = None) -> str:
    from agent.capture import open_source

    source = open_source(cfg.camera, cfg.base_dir)
    source.open()
    try:
        frame = source.read()
    finally:
        source.close()
    if frame is None:
        raise AgentError(f"{source.description} delivered no frame")
    h, w = frame.image.shape[:2]
    saved = "" if save is None else f"; frame saved to {_save_frame(frame.image, save)}"
    return f"{source.description} delivers {w}x{h} frames{saved}"


def _save_frame(image: Any, path: Path) -> Path:
    """Write the frame atomically (a viewer never opens half a file); OSError/AgentError on failure."""
    import cv2

    from agent import fsutil

    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise AgentError(f"--save-frame {path}: use a .jpg or .png name")
    ok, data = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise AgentError(f"--save-frame {path}: the frame could not be encoded")
    fsutil.write_atomic(path, bytes(data))
    return path


def _credentials(cfg: AgentConfig) -> str:
    password = read_password(cfg.mqtt, cfg.base_dir)
    return "password set" if password is not None else "none (anonymous)"


def _broker(cfg: AgentConfig, timeout: float) -> str:
    """A real MQTT connect with the configured credentials and TLS: a wrong password fails here."""
    from agent.mqtt import ClientSpec, probe

    m = cfg.mqtt
    client_id = f"{m.client_id or cfg.topic_root.replace('/', '-')}-check"
    spec = ClientSpec.from_mqtt(m, client_id, read_password(m, cfg.base_dir))
    return probe(spec, m.host, m.port, keepalive=m.keepalive_s, timeout=timeout)
