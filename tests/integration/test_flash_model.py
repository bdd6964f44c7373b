"""deploy/flash-model and deploy/rollback against a real OpenSSH server standing in for the device.

The device store is a temp dir on this machine, reached through sshd as root; the device's CLI is
this checkout's ``inspection-agent`` (``python -m agent``), which does every step there. Packages
made of placeholder bytes cannot pass the real ``model validate``, so a small script stands in for
it via ``--validate-cmd`` (the real one runs in the last tests, on real models). The agent's hot
swap is played by a stand-in process that answers SIGHUP by writing model-state.json as the agent
does, and by the real agent in the last test (zero dropped frames, automatic rollback).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model.store import ModelStore, is_complete
from tests.support.flash import (
    DEVICE_CLI,
    REAL_VALIDATE,
    agent_on_store,
    assert_one_clean_switch,
    flash,
    wait_state,
)
from tests.support.paths import REPO, free_port
from tests.support.sshd import SshServer
from tests.unit.deploy.packages import break_manifest_checksum, make_package, make_tarball, truncate_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALIDATE = textwrap.dedent(
    """\
    import json, sys, yaml
    manifest = yaml.safe_load(open(sys.argv[1] + "/manifest.yaml"))
    if manifest.get("budget_ms", 1) < 1:
        print(json.dumps({"ok": False, "checks": [{"name": "latency", "ok": False,
                                                    "detail": "p99 12.0 ms over budget 0.01 ms"}]}))
        sys.exit(1)
    print(json.dumps({"ok": True}))
    """
)

STAND_IN_AGENT = textwrap.dedent(
    """\
    # Answers SIGHUP like the agent: re-resolve models/demo/current, report in model-state.json.
    import json, os, signal, sys, time, yaml
    store, state_file, pid_file = sys.argv[1:4]
    def reload(*_):
        current = os.path.join(store, "demo", "current")
        manifest = yaml.safe_load(open(os.path.join(current, "manifest.yaml")))
        bad = manifest.get("description") == "fails after swap"
        state = {"state": "rolled_back" if bad else "active", "name": manifest["name"],
                 "version": manifest["version"], "sha256": manifest["sha256"], "previous": None,
                 "reason": "3 of 20 frames produced NaN" if bad else "", "ts": int(time.time() * 1000)}
        with open(state_file + ".tmp", "w") as fh:
            json.dump(state, fh)
        os.replace(state_file + ".tmp", state_file)
    signal.signal(signal.SIGHUP, reload)
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        time.sleep(1)
    """
)


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """A store with demo 1.0.0 running, as after deploy/install.sh."""
    store = ModelStore(tmp_path / "store")
    store.install(make_package(tmp_path / "v1", version="1.0.0"))
    store.activate("demo", "1.0.0")
    return store.root


def current(store: Path) -> str | None:
    return ModelStore(store).current("demo")


@pytest.fixture
def validate_cmd(tmp_path: Path) -> str:
    script = tmp_path / "validate.py"
    script.write_text(VALIDATE)
    return f"{sys.executable} {script}"


@pytest.fixture
def agent(tmp_path: Path, device: Path) -> Iterator[tuple[Path, Path]]:
    pid_file, state_file = tmp_path / "agent.pid", tmp_path / "model-state.json"
    script = tmp_path / "agent.py"
    script.write_text(STAND_IN_AGENT)
    proc = subprocess.Popen([sys.executable, str(script), str(device), str(state_file), str(pid_file)])
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield pid_file, state_file
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def no_reload(validate_cmd: str) -> list[str]:
    return ["--reload", "none", "--validate-cmd", validate_cmd]


def test_good_package_switches_current(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    result = flash(
        sshd, device, make_tarball(make_package(tmp_path / "v2", version="2.0.0")), *no_reload(validate_cmd)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK [done] demo 1.0.0 -> 2.0.0 active" in result.stdout
    assert current(device) == "2.0.0"
    assert is_complete(device / "demo" / "current")
    assert not list(Path("/var/tmp").glob("inspection-flash.*/package"))


def test_truncated_model_is_refused(sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    truncate_model(pkg)
    result = flash(sshd, device, pkg, *no_reload(validate_cmd))
    assert result.returncode == 3
    assert "FAILED [verify]" in result.stdout and "sha256 mismatch for model.tflite" in result.stdout
    assert current(device) == "1.0.0"
    assert not (device / "demo" / "2.0.0").exists()


def test_bad_manifest_checksum_is_refused(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    break_manifest_checksum(pkg)
    result = flash(sshd, device, pkg, *no_reload(validate_cmd))
    assert result.returncode == 3, result.stdout
    assert "sha256 mismatch" in result.stdout
    assert current(device) == "1.0.0"


def test_package_failing_validation_is_refused(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    (pkg / "manifest.yaml").write_text(
        (pkg / "manifest.yaml").read_text().replace("budget_ms: 50", "budget_ms: 0.01")
    )
    result = flash(sshd, device, pkg, *no_reload(validate_cmd))
    assert result.returncode == 3
    assert "FAILED [validate] validation failed: latency: p99 12.0 ms over budget" in result.stdout
    assert current(device) == "1.0.0"
    assert not (device / "demo" / "2.0.0").exists()


def test_missing_validate_command_is_refused(sshd: SshServer, device: Path, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    result = flash(
        sshd, device, pkg, "--reload", "none", "--validate-cmd", str(tmp_path / "no-such-validate")
    )
    assert result.returncode == 3
    assert "FAILED [validate] cannot run" in result.stdout
    assert current(device) == "1.0.0"


def test_unreachable_host_fails_cleanly(device: Path, tmp_path: Path, validate_cmd: str) -> None:
    argv = [
        sys.executable, str(REPO / "deploy" / "flash-model"), str(make_package(tmp_path, version="2.0.0")),
        "127.0.0.1", "--ssh-port", str(free_port()), "--store", str(device), "--reload", "none",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 255
    assert "127.0.0.1: FAILED [ssh]" in result.stdout
    assert current(device) == "1.0.0"


def test_damaged_transfer_is_refused(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    """The sha256 sent along does not match what arrived (as after a corrupted or cut stream)."""
    pkg = make_tarball(make_package(tmp_path / "v2", version="2.0.0"))
    cmd = (
        f"{DEVICE_CLI} store install {pkg} --sha256 {'0' * 64} --activate --store {device} "
        f"--reload none --validate-cmd {shlex.quote(validate_cmd)} --json"
    )
    result = sshd.run(cmd)
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["step"] == "transfer"
    assert current(device) == "1.0.0"
    assert ModelStore(device).versions("demo") == ["1.0.0"]


def test_agent_confirms_the_swap_via_model_state(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str, agent: tuple[Path, Path]
) -> None:
    pid_file, state_file = agent
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    result = flash(sshd, device, pkg, "--reload", f"pid:{pid_file}", "--state-file", str(state_file),
                   "--validate-cmd", validate_cmd, "--timeout", "30")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(state_file.read_text())["version"] == "2.0.0"
    assert current(device) == "2.0.0"


def test_agent_rollback_after_swap_restores_current_and_fails(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str, agent: tuple[Path, Path]
) -> None:
    pid_file, state_file = agent
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    (pkg / "manifest.yaml").write_text(
        (pkg / "manifest.yaml").read_text() + "description: fails after swap\n"
    )
    result = flash(sshd, device, pkg, "--reload", f"pid:{pid_file}", "--state-file", str(state_file),
                   "--validate-cmd", validate_cmd, "--timeout", "30")  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert "the agent rolled_back: 3 of 20 frames produced NaN" in result.stdout
    assert current(device) == "1.0.0"


def test_agent_that_never_answers_times_out(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    pid_file = tmp_path / "sleeper.pid"
    sleeper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time\nsignal.signal(signal.SIGHUP, lambda *a: None)\ntime.sleep(60)",
        ]
    )
    try:
        pid_file.write_text(str(sleeper.pid))
        pkg = make_package(tmp_path / "v2", version="2.0.0")
        state = str(tmp_path / "none.json")
        result = flash(sshd, device, pkg, "--reload", f"pid:{pid_file}", "--state-file", state,
                       "--validate-cmd", validate_cmd, "--timeout", "1")  # fmt: skip
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
    assert result.returncode == 5
    assert "did not report demo 2.0.0 within 1s" in result.stdout


def test_reload_failure_restores_current(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    result = flash(sshd, device, make_package(tmp_path / "v2", version="2.0.0"), "--reload",
                   f"pid:{tmp_path / 'no-agent.pid'}", "--validate-cmd", validate_cmd,
                   "--state-file", str(tmp_path / "model-state.json"))  # fmt: skip
    assert result.returncode == 6
    assert "FAILED [reload]" in result.stdout
    assert current(device) == "1.0.0"


def test_flash_without_a_way_to_confirm_is_refused_before_the_switch(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    """The swap is confirmed through model-state.json: without --config or --state-file, nothing switches."""
    result = flash(sshd, device, make_package(tmp_path / "v2", version="2.0.0"), "--reload",
                   f"pid:{tmp_path / 'no-agent.pid'}", "--validate-cmd", validate_cmd)  # fmt: skip
    assert result.returncode == 3 and "pass --config or --state-file" in result.stdout
    assert current(device) == "1.0.0"


def test_rollback_goes_back_one_version(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    assert (
        flash(
            sshd, device, make_package(tmp_path / "v2", version="2.0.0"), *no_reload(validate_cmd)
        ).returncode
        == 0
    )
    argv = [
        sys.executable, str(REPO / "deploy" / "rollback"), sshd.host, "--ssh-port", str(sshd.port),
        "--user", sshd.user, "--identity", str(sshd.identity), "--known-hosts", str(sshd.known_hosts),
        "--store", str(device), "--reload", "none", "--device-cli", DEVICE_CLI,
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK [done] demo 2.0.0 -> 1.0.0" in result.stdout
    assert current(device) == "1.0.0"
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 3 and "no earlier version" in again.stdout


def test_inventory_flashes_every_host(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        f"hosts:\n  - host: {sshd.host}\n    port: {sshd.port}\n    user: root\n"
        f"    identity: {sshd.identity}\n"
        f"  - host: line3-cam2\n    address: {sshd.host}\n    port: {sshd.port}\n    user: root\n"
        f"    identity: {sshd.identity}\n"
    )
    pkg = make_package(tmp_path / "v2", version="2.0.0")
    argv = [
        sys.executable, str(REPO / "deploy" / "flash-model"), str(pkg),
        "--inventory", str(inv), "--known-hosts", str(sshd.known_hosts), "--store", str(device),
        "--device-cli", DEVICE_CLI, *no_reload(validate_cmd),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{sshd.host}: OK [done] demo 1.0.0 -> 2.0.0")
    assert lines[1] == "line3-cam2: OK [done] demo 2.0.0 is already current"
    assert os.readlink(device / "demo" / "current") == "2.0.0"


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not installed")
def test_ansible_playbooks_flash_in_batches_and_roll_back(
    sshd: SshServer, device: Path, tmp_path: Path, validate_cmd: str
) -> None:
    common = (
        f"ansible_host={sshd.host} ansible_port={sshd.port} ansible_user=root "
        f"ansible_ssh_private_key_file={sshd.identity} ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={sshd.known_hosts} -o StrictHostKeyChecking=yes'"
    )
    inv = tmp_path / "inventory.ini"
    inv.write_text(f"[inspection]\ncam-a {common}\n")  # one host: each Ansible task costs ~1 s here
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
    }
    argv = [
        "ansible-playbook", "-i", str(inv), str(REPO / "deploy" / "ansible" / "flash-model.yml"),
        "-e", f"package={make_tarball(make_package(tmp_path / 'v2', version='2.0.0'))}",
        "-e", f"store={device}", "-e", "reload=none", "-e", "use_become=false",
        "-e", "service_group=", "-e", f"agent_cli='{DEVICE_CLI}'",
        "-e", f"validate_cmd='{validate_cmd}'",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "demo 1.0.0 -> 2.0.0 active" in result.stdout
    assert "failed=0" in result.stdout
    assert current(device) == "2.0.0"

    argv = [
        "ansible-playbook", "-i", str(inv), str(REPO / "deploy" / "ansible" / "rollback.yml"),
        "-e", "target=inspection", "-e", f"store={device}", "-e", "reload=none", "-e", "use_become=false",
        "-e", f"agent_cli='{DEVICE_CLI}'",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "demo 2.0.0 -> 1.0.0" in result.stdout
    assert current(device) == "1.0.0"


def test_real_validate_accepts_a_real_model(sshd: SshServer, device: Path, tmp_path: Path) -> None:
    from tests.unit.model.packages import write_package

    pkg = write_package(tmp_path / "real", "cls_u8.tflite", name="demo", version="2.0.0")
    result = flash(sshd, device, pkg, "--reload", "none", "--validate-cmd", REAL_VALIDATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert current(device) == "2.0.0"


def test_real_validate_refuses_a_model_too_slow_for_its_budget(
    sshd: SshServer, device: Path, tmp_path: Path
) -> None:
    from tests.unit.model.packages import write_package

    pkg = write_package(tmp_path / "slow", "cls_u8.tflite", name="demo", version="2.0.0", budget_ms=0.0001)
    result = flash(sshd, device, pkg, "--reload", "none", "--validate-cmd", REAL_VALIDATE)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAILED [validate]" in result.stdout and "over budget" in result.stdout
    assert current(device) == "1.0.0"
    assert not (device / "demo" / "2.0.0").exists()


def test_real_agent_hot_swaps_and_rolls_back_a_failing_model(
    sshd: SshServer, tmp_path: Path, mosquitto: Any, unique_prefix: str
) -> None:
    """The running agent follows `current` on SIGHUP; a model that fails after the swap comes back out."""
    from tests.support.models import make_package as make_slow_package
    from tests.support.models import slow_classifier
    from tests.unit.model.packages import write_package

    first = write_package(tmp_path / "p1", "cls_u8.tflite", name="demo", version="1.0.0")
    with agent_on_store(
        tmp_path, mosquitto.port, unique_prefix, first, inference={"rollback_frames": 5}
    ) as device:
        store, agent = device.store, device.agent
        good = write_package(tmp_path / "p2", "cls_u8.tflite", name="demo", version="2.0.0")
        result = device.flash(sshd, good, "--validate-cmd", REAL_VALIDATE)
        assert result.returncode == 0, result.stdout + result.stderr + agent.output[-3000:]
        assert "demo 1.0.0 -> 2.0.0 active" in result.stdout
        # Zero frames dropped for the swap: consecutive frame numbers, one switch from 1.0.0 to 2.0.0.
        assert_one_clean_switch(device.results, "1.0.0", "2.0.0")

        # Validation passes (a stand-in: the real one would catch these), then the agent refuses:
        # a model that yields NaN fails at load/warm-up, a model over budget on live frames is
        # swapped in and rolled back after its first frames. Either way `current` comes back.
        nan = write_package(tmp_path / "p3", "nan.onnx", name="demo", version="3.0.0")
        result = device.flash(sshd, nan, "--validate-cmd", "true")
        assert result.returncode == 4, result.stdout + result.stderr + agent.output[-3000:]
        assert "FAILED [confirm] the agent failed: model output contains NaN" in result.stdout
        assert current(store) == "2.0.0"

        slow = make_slow_package(tmp_path / "p4", slow_classifier(tmp_path / "slow.onnx", 400),
                                 name="demo", version="4.0.0", labels=["ok", "scratch", "hole"],
                                 width=32, height=32, budget_ms=1.0)  # fmt: skip
        result = device.flash(sshd, slow, "--validate-cmd", "true")
        assert result.returncode == 4, result.stdout + result.stderr + agent.output[-3000:]
        assert "FAILED [confirm] the agent rolled_back" in result.stdout and "over budget" in result.stdout
        assert current(store) == "2.0.0"
        assert agent.proc.poll() is None


def test_flash_as_shadow_makes_the_running_agent_load_it_beside_the_current_model(
    sshd: SshServer, tmp_path: Path, mosquitto: Any, unique_prefix: str
) -> None:
    """`flash-model --shadow`: validated, installed, the store's shadow link set, the agent reloads
    its shadow on SIGHUP (a second flash replaces it); `current` and the line are untouched."""
    from tests.unit.model.packages import write_package

    first = write_package(tmp_path / "p1", "cls_u8.tflite", name="demo", version="1.0.0")
    health = {"interval_s": 0.5}
    with agent_on_store(tmp_path, mosquitto.port, unique_prefix, first, health=health) as device:
        health_file = device.state_dir / "health.json"
        assert wait_state(health_file, lambda h: h["counters"]["inspected"] > 0)["shadow"] is None
        for version in ("2.0.0", "3.0.0"):
            pkg = write_package(tmp_path / version, "cls_u8.tflite", name="demo", version=version)
            result = device.flash(sshd, pkg, "--shadow", "--validate-cmd", REAL_VALIDATE)
            assert result.returncode == 0, result.stdout + result.stderr + device.agent.output[-3000:]
            assert f"shadow {'None' if version == '2.0.0' else '2.0.0'} -> {version}" in result.stdout
            shadow = wait_state(health_file, lambda h, v=version: _shadow_ran(h, v))["shadow"]
            assert shadow["active"]["version"] == "1.0.0" and shadow["agreement"] == 1.0  # the same network
            assert current(device.store) == "1.0.0" and ModelStore(device.store).shadow("demo") == version
        seen = device.results.wait_for(10**6, timeout=1)
        versions = {json.loads(payload)["model"]["version"] for _, payload, _ in seen}
        assert versions == {"1.0.0"} and device.agent.proc.poll() is None


def _shadow_ran(health: dict[str, Any], version: str) -> bool:
    """The health report shows ``version`` running as the shadow, with frames compared."""
    shadow = health.get("shadow") or {}
    model = shadow.get("model") or {}
    return (
        shadow.get("state") == "running" and model.get("version") == version and shadow.get("frames", 0) > 0
    )
