"""set-sampling and snapshot through the real command router; build_samplers from a real config."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml

from agent.config import load_config
from agent.protocol.topics import Topics
from agent.publish import CommandRouter
from agent.sampling import build_samplers, register_sampling_commands
from agent.testing import RecordingSink
from tests.unit.sampling.helpers import frame, make, payload, result


def call(router: CommandRouter, name: str, args: dict[str, object]) -> dict[str, object]:
    return router.handle(name, json.dumps(args).encode())


def test_set_sampling_changes_a_policy_at_run_time() -> None:
    sink = RecordingSink()
    sampler = make(sink)
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    sampler.observe(frame(0), result(0.99), payload())
    reply = call(router, "set-sampling", {"policy": "random", "enabled": True, "rate": 1.0, "per_minute": 5})
    assert reply["ok"], reply
    policy = reply["result"]["policies"]["random"]  # type: ignore[index]
    assert policy["enabled"] and policy["quota"]["per_minute"] == 5
    sampler.observe(frame(1), result(0.99), payload())
    sampler.close()
    assert len(sink.messages) == 1


def test_set_sampling_refuses_invalid_values_and_changes_nothing() -> None:
    sampler = make(RecordingSink())
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    for args, error in [
        ({"policy": "random", "rate": 1.5}, "rate"),
        ({"policy": "nope"}, "unknown"),
        ({"rate": 0.5}, "need a policy"),
        ({"policy": "low_confidence", "min_score": 0.9, "max_score": 0.1}, "max_score"),
        ({"policy": "classes", "labels": [1, 2]}, "labels"),
        ({"policy": "random", "rate": "high"}, "expected float"),
    ]:
        reply = call(router, "set-sampling", args)
        assert not reply["ok"] and error in str(reply["error"]), (args, reply)
    assert sampler.policies["random"].config.rate == 1.0 and not sampler.policies["random"].config.enabled
    sampler.close()


def test_set_sampling_turns_the_sampler_off_and_on() -> None:
    sampler = make(RecordingSink())
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    assert call(router, "set-sampling", {"enabled": False})["result"]["enabled"] is False  # type: ignore[index]
    assert not sampler.enabled
    call(router, "set-sampling", {"enabled": True, "per_hour": 10})
    assert sampler.enabled and sampler.quota.config.per_hour == 10
    sampler.close()


def test_snapshot_replies_with_the_id_of_the_next_frame() -> None:
    sink = RecordingSink()
    sampler = make(sink)
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    replies: list[dict[str, object]] = []
    worker = threading.Thread(target=lambda: replies.append(call(router, "snapshot", {"timeout_s": 5})))
    worker.start()
    while not sampler._snapshots:  # the command is waiting for a frame
        threading.Event().wait(0.01)
    sampler.observe(frame(0), result(0.99), payload())
    worker.join(5)
    sampler.close()
    meta = json.loads(dict(sink.messages[0].user_properties)["meta"])
    assert replies[0]["result"] == {"id": meta["id"]}


def test_snapshot_times_out_without_frames() -> None:
    sampler = make(RecordingSink())
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    reply = call(router, "snapshot", {"timeout_s": 0.05})
    assert not reply["ok"] and "no frame" in str(reply["error"])
    sampler.close()


def test_build_samplers_from_config(tmp_path: Path) -> None:
    doc = {
        "device": {"id": "cam-01", "site": "s", "line": "l"},
        "camera": {"source": "synthetic:"},
        "model": {"path": "m"},
        "state": {"dir": str(tmp_path / "state")},
    }
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    assert build_samplers(cfg, RecordingSink(), Topics.from_config(cfg)) == []  # off by default
    doc["sampling"] = {"enabled": True, "random": {"enabled": True, "rate": 0.05, "quota": {"per_minute": 2}}}
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    (sampler,) = build_samplers(cfg, RecordingSink(), Topics.from_config(cfg))
    assert sampler.policies["random"].config.rate == 0.05
    assert sampler._wire.topic == "inspection/s/l/cam-01/sample"
    sampler.close()


def test_invalid_sampling_config_is_reported_with_its_key(tmp_path: Path) -> None:
    import pytest

    from agent.errors import ConfigError

    path = tmp_path / "a.yaml"
    path.write_text(
        "device: {id: c, site: s, line: l}\ncamera: {source: 'synthetic:'}\nmodel: {path: m}\n"
        "sampling:\n  random: {rate: 2}\n  dedup: {max_distance: 99}\n  bogus: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "\n".join(info.value.problems)
    assert "sampling.random.rate: must be between 0 and 1" in text
    assert "sampling.dedup.max_distance" in text and "sampling.bogus: unknown key" in text


# -- issue 12, cases 2 and 6: commands that time out, and absurd values -----------------------
def test_a_snapshot_that_times_out_does_not_crash_the_next_frame() -> None:
    sink = RecordingSink()
    sampler = make(sink)
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    for timeout in (0, 0.01):
        reply = call(router, "snapshot", {"timeout_s": timeout})
        assert not reply["ok"] and "no frame inspected" in str(reply["error"]), reply
    sampler.observe(frame(0), result(0.99), payload())  # used to raise InvalidStateError (exit 3)
    assert sampler.flush(5)
    assert sink.messages == []  # nobody waits for those snapshots any more: nothing is sampled for them
    ok = threading.Thread(target=lambda: sampler.observe(frame(1), result(0.99), payload()))
    waiting = threading.Timer(0.2, ok.start)
    waiting.start()
    reply = call(router, "snapshot", {"timeout_s": 5})
    assert reply["ok"], reply
    sampler.close()


def test_snapshot_refuses_a_timeout_out_of_range() -> None:
    sampler = make(RecordingSink())
    router = CommandRouter()
    register_sampling_commands(router, sampler)
    for bad in (b"-1", b"1e400", b"61"):
        reply = router.handle("snapshot", b'{"timeout_s": ' + bad + b"}")
        assert not reply["ok"] and "timeout_s" in str(reply["error"]), (bad, reply)
    sampler.close()


def test_set_sampling_refuses_absurd_values_and_replies_strict_json() -> None:
    sampler = make(RecordingSink())
    router = CommandRouter()
    register_sampling_commands(router, sampler, labels=lambda: ("ok", "scratch"))
    for raw, error in [
        (b'{"policy": "near_threshold", "threshold": -1e400}', "threshold"),
        (b'{"policy": "near_threshold", "threshold": 1e400}', "threshold"),
        (b'{"policy": "near_threshold", "threshold": 1e9}', "threshold"),
        (b'{"policy": "classes", "labels": ["scratch", "dent"]}', "dent"),
        (b'{"policy": "random", "per_minute": 1' + b"0" * 400 + b"}", "per_minute"),
        (b'{"per_day": -1}', "per_day"),
        (b'{"policy": "random", "per_hour": -5}', "per_hour"),
    ]:
        reply = router.handle("set-sampling", raw)
        assert not reply["ok"] and error in str(reply["error"]), (raw[:60], reply)
        assert "internal error" not in str(reply["error"])
        json.loads(json.dumps(reply, allow_nan=False))  # strict JSON: no NaN/Infinity anywhere
    assert sampler.quota.config.per_day is None or sampler.quota.config.per_day >= 0
    assert call(router, "set-sampling", {"policy": "classes", "labels": ["scratch"]})["ok"]
    sampler.close()


def test_a_command_reply_is_always_strict_json() -> None:
    from agent.publish.mqtt import reply_json

    body = reply_json({"ok": True, "command": "status", "result": {"fps": float("nan"), "x": [float("inf")]}})
    assert json.loads(body) == {"ok": True, "command": "status", "result": {"fps": None, "x": [None]}}
