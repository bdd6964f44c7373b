"""CommandRouter: every bad payload becomes an error reply, nothing escapes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import CommandError
from agent.publish.commands import MAX_PAYLOAD, CommandRequest, CommandRouter, confine, reply_topic


def set_sampling(args: dict[str, Any]) -> dict[str, Any]:
    if args["rate"] > 1:
        raise CommandError("rate must be at most 1")
    return {"rate": args["rate"]}


def boom(_: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("secret internals")


@pytest.fixture
def router() -> CommandRouter:
    r = CommandRouter()
    r.register("set-sampling", set_sampling, {"required": {"rate": float}, "optional": {"note": str}})
    r.register("boom", boom)
    r.register("count", lambda a: {"n": a["n"]}, {"required": {"n": int}})
    return r


def test_ping_answers_ok(router: CommandRouter) -> None:
    reply = router.handle("ping", b'{"echo": "hi"}')
    assert reply["ok"] is True and reply["command"] == "ping"
    assert reply["result"]["pong"] is True and reply["result"]["echo"] == "hi"


def test_an_empty_payload_means_no_arguments(router: CommandRouter) -> None:
    assert router.handle("ping", b"")["ok"] is True


def test_success_reply_carries_the_handler_result(router: CommandRouter) -> None:
    assert router.handle("set-sampling", b'{"rate": 0.5}') == {
        "ok": True,
        "command": "set-sampling",
        "result": {"rate": 0.5},
    }


def test_an_int_is_accepted_where_a_float_is_expected(router: CommandRouter) -> None:
    assert router.handle("set-sampling", b'{"rate": 1}')["ok"] is True


@pytest.mark.parametrize(
    ("name", "payload", "error"),
    [
        ("nope", b"{}", "unknown command"),
        ("set-sampling", b"{not json", "malformed JSON"),
        ("set-sampling", b"\xff\xfe", "malformed JSON"),
        ("set-sampling", b'{"rate": NaN}', "malformed JSON"),
        ("set-sampling", b"[" * 50000, "malformed JSON"),
        ("set-sampling", b"[1, 2]", "must be a JSON object"),
        ("set-sampling", b'"rate"', "must be a JSON object"),
        ("set-sampling", b"{}", "missing key(s): rate"),
        ("set-sampling", b'{"rate": 0.1, "extra": 1}', "unknown key(s): extra"),
        ("set-sampling", b'{"rate": "fast"}', "rate: expected float, got str"),
        ("set-sampling", b'{"rate": true}', "rate: expected float, got bool"),
        ("count", b'{"n": true}', "n: expected int, got bool"),
        ("count", b'{"n": 1.5}', "n: expected int, got float"),
        ("set-sampling", b'{"rate": 3}', "rate must be at most 1"),
        ("boom", b"{}", "internal error"),
    ],
)
def test_bad_commands_get_an_error_reply(
    router: CommandRouter, name: str, payload: bytes, error: str
) -> None:
    reply = router.handle(name, payload)
    assert reply["ok"] is False and reply["command"] == name
    assert error in reply["error"]
    json.dumps(reply)  # always serialisable


def test_an_internal_error_does_not_leak_details(router: CommandRouter) -> None:
    assert "secret" not in router.handle("boom", b"{}")["error"]


def test_an_oversized_payload_is_refused_before_parsing(router: CommandRouter) -> None:
    payload = b'{"rate": 0.1, "note": "' + b"x" * MAX_PAYLOAD + b'"}'
    assert "more than 65536" in router.handle("set-sampling", payload)["error"]


def test_a_schema_with_unknown_sections_is_a_programming_error(router: CommandRouter) -> None:
    with pytest.raises(ValueError, match="schema keys"):
        router.register("x", set_sampling, {"needed": {"rate": float}})


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["ping", "set-sampling", "count", "boom", "nope"]), payload=st.binary(max_size=300)
)
def test_fuzzed_binary_payloads_only_ever_produce_replies(name: str, payload: bytes) -> None:
    reply = make_router().handle(name, payload)
    assert set(reply) >= {"ok", "command"}
    json.dumps(reply)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["ping", "set-sampling", "count", "boom"]), doc=json_values)
def test_fuzzed_json_documents_only_ever_produce_replies(name: str, doc: Any) -> None:
    reply = make_router().handle(name, json.dumps(doc).encode())
    assert isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]


def make_router() -> CommandRouter:
    r = CommandRouter()
    r.register("set-sampling", set_sampling, {"required": {"rate": float}, "optional": {"note": str}})
    r.register("boom", boom)
    r.register("count", lambda a: {"n": a["n"]}, {"required": {"n": int}})
    return r


def test_submitted_commands_run_on_the_worker_and_reply(router: CommandRouter) -> None:
    replies: list[tuple[CommandRequest, dict[str, Any], str]] = []
    done = threading.Event()

    def reply(req: CommandRequest, body: dict[str, Any]) -> None:
        replies.append((req, body, threading.current_thread().name))
        done.set()

    req = CommandRequest("ping", b"{}", "p/cmd/ping/reply", b"corr")
    router.submit(req, reply)
    assert done.wait(5)
    router.close()
    assert replies[0][0] is req and replies[0][1]["ok"] is True and replies[0][2] == "commands"


def test_a_failing_reply_callback_does_not_kill_the_worker(router: CommandRouter) -> None:
    done = threading.Event()

    def bad(_req: CommandRequest, _body: dict[str, Any]) -> None:
        raise RuntimeError("broker gone")

    router.submit(CommandRequest("ping", b"", "r"), bad)
    router.submit(CommandRequest("ping", b"", "r"), lambda *_: done.set())
    assert done.wait(5)
    router.close()


def test_confine_resolves_paths_inside_the_store(tmp_path: Path) -> None:
    (tmp_path / "m" / "1.0").mkdir(parents=True)
    assert confine("m/1.0", tmp_path) == (tmp_path / "m" / "1.0").resolve()
    assert confine(str(tmp_path / "m"), tmp_path) == (tmp_path / "m").resolve()


@pytest.mark.parametrize("path", ["../etc", "/etc/passwd", "m/../../x", "a\0b"])
def test_confine_refuses_paths_that_leave_the_store(tmp_path: Path, path: str) -> None:
    with pytest.raises(CommandError):
        confine(path, tmp_path)


def test_confine_refuses_a_symlink_out_of_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "link").symlink_to(tmp_path)
    with pytest.raises(CommandError, match="outside the model store"):
        confine("link/secret", store)


def test_replies_go_to_the_response_topic_when_there_is_one() -> None:
    assert reply_topic("p/s/l/d/cmd/ping", "ops/replies/42") == "ops/replies/42"


@pytest.mark.parametrize("response", [None, "", "ops/+/x", "ops/#"])
def test_without_a_usable_response_topic_replies_go_under_the_command(response: str | None) -> None:
    # MQTT 3.1.1 has no response topic at all: this is its path.
    assert reply_topic("p/s/l/d/cmd/ping", response) == "p/s/l/d/cmd/ping/reply"


def test_a_command_flood_is_answered_busy_beyond_the_rate_limit() -> None:
    router = CommandRouter(rate_per_s=10, burst=20)
    replies: list[dict[str, Any]] = []
    done = threading.Event()

    def reply(_req: CommandRequest, response: dict[str, Any]) -> None:
        replies.append(response)
        if len(replies) == 500:
            done.set()

    started = time.monotonic()
    for _ in range(500):
        router.submit(CommandRequest("ping", b"", "r"), reply)
    assert done.wait(10)
    elapsed = time.monotonic() - started
    ok = sum(1 for r in replies if r["ok"])
    busy = [r for r in replies if not r["ok"]]
    assert 20 <= ok <= 20 + 10 * elapsed + 1
    assert busy and all("busy" in r["error"] for r in busy)
    router.close()
