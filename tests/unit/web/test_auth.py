"""The shared web layer: scrypt hashes, the users file, signed sessions, CSRF tokens, login limits."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agent.web.auth import LoginLimiter, Signer, load_secret
from agent.web.config import WebConfig, WebError
from agent.web.server import WebServer
from agent.web.users import Users, UsersError, add_user, hash_password, verify_password
from tests.support.agentproc import agent_command
from tests.support.paths import REPO

ROLES = ("reviewer", "admin")


def test_password_hashes_are_salted_scrypt_with_their_parameters() -> None:
    one, two = hash_password("correct horse"), hash_password("correct horse")
    assert one != two and one.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", one) and not verify_password("wrong horse", one)
    assert not verify_password("x", "md5$abc") and not verify_password("x", "garbage")
    cheap = hash_password("p", n=1024)
    assert verify_password("p", cheap)  # parameters are read from the hash itself


def test_users_file_add_replace_reload_and_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    assert add_user(path, "alice", "reviewer", "long-enough", ROLES) is False
    assert path.stat().st_mode & 0o777 == 0o600
    users = Users(path, ROLES)
    assert users.authenticate("alice", "long-enough") is not None
    assert users.authenticate("alice", "nope-nope") is None and users.authenticate("eve", "x") is None
    assert add_user(path, "alice", "admin", "another-one", ROLES) is True
    user = users.get("alice")
    assert user is not None and user.role == "admin"  # re-read after the change, no restart
    with pytest.raises(UsersError, match="at least 8"):
        add_user(path, "bob", "reviewer", "short", ROLES)
    with pytest.raises(UsersError, match="--role"):
        add_user(path, "bob", "root", "long-enough", ROLES)
    with pytest.raises(UsersError, match="user name"):
        add_user(path, "bob smith", "reviewer", "long-enough", ROLES)
    path.write_text("users: {mallory: {role: god, password: x}}\n")
    with pytest.raises(UsersError, match="mallory"):
        Users(path, ROLES)


def test_a_users_file_that_is_a_yaml_bomb_or_repeats_a_user_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    path.write_text("\n".join(lines) + "\n")  # a billion laughs: 10^9 values if expanded
    with pytest.raises(UsersError, match=r"users file .*users\.yaml:1: more than .* values") as err:
        Users(path, ROLES)
    assert "\n" not in str(err.value)
    path.write_text("users:\n  alice: {role: admin, password: x}\n  alice: {role: reviewer, password: y}\n")
    with pytest.raises(UsersError, match="duplicate key"):
        Users(path, ROLES)


def test_sessions_are_signed_expire_and_bind_the_csrf_token(tmp_path: Path) -> None:
    key = load_secret(tmp_path / "secret.key")
    assert (
        load_secret(tmp_path / "secret.key") == key
        and (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    )
    signer = Signer(key, max_age_s=60)
    cookie = signer.issue("alice", "hash-1")
    session = signer.check(cookie)
    assert session is not None and session.user == "alice"
    assert signer.fingerprint("hash-1") == session.fingerprint != signer.fingerprint("hash-2")
    payload, _, mac = cookie.rpartition(".")
    doc = json.loads(base64.urlsafe_b64decode(payload))
    forged = base64.urlsafe_b64encode(json.dumps({**doc, "u": "boss"}).encode()).decode()
    assert signer.check(f"{forged}.{mac}") is None  # another user under the same signature
    assert Signer(b"another key 1234", 60).check(cookie) is None
    assert signer.check("garbage") is None and signer.check(None) is None
    other = signer.check(signer.issue("bob", "hash-3"))
    assert other is not None
    assert signer.csrf_ok(session.nonce, signer.csrf(session.nonce))
    assert not signer.csrf_ok(session.nonce, signer.csrf(other.nonce)) and not signer.csrf_ok(
        session.nonce, ""
    )
    old = Signer(key, max_age_s=60)
    old_cookie = old.issue("alice", "hash-1")
    old.max_age_s = -1
    assert old.check(old_cookie) is None


def test_failed_logins_are_limited_per_user_and_per_address() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=0.3)
    for _ in range(2):
        assert not limiter.blocked("alice", "10.0.0.1")
        limiter.failed("alice", "10.0.0.1")
    assert limiter.blocked("alice", "10.0.0.2") and limiter.blocked("bob", "10.0.0.1")
    assert not limiter.blocked("bob", "10.0.0.2")
    time.sleep(0.35)
    assert not limiter.blocked("alice", "10.0.0.1")


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WebError, match=f"cannot listen on 127.0.0.1:{port}"):
            WebServer(lambda *_: None, WebConfig(listen=f"127.0.0.1:{port}"))


def test_collector_adduser_command(tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(f"storage: {{root: {tmp_path / 'store'}}}\nweb: {{users_file: users.yaml}}\n")
    cmd = [*agent_command(), "collector", "adduser", "carol", "--role", "admin", "--password-stdin",
           "--config", str(config)]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, input="carol-password\n", capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "added carol (admin)" in done.stdout
    user = Users(tmp_path / "users.yaml", ROLES).authenticate("carol", "carol-password")
    assert user is not None and user.role == "admin"
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, env=env, check=False)
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    config.write_text(f"storage: {{root: {tmp_path / 'store'}}}\n")
    none = subprocess.run(cmd, input="carol-password\n", capture_output=True, text=True, env=env, check=False)
    assert none.returncode != 0 and "no web: section" in none.stderr


def test_revoked_sessions_survive_a_restart_until_they_would_have_expired(tmp_path: Path) -> None:
    from agent.web.auth import Revoked

    now = [1000.0]
    path = tmp_path / "web-secret.key.revoked"
    revoked = Revoked(path, now=lambda: now[0])
    revoked.add("n1", 1000.0 + 60)
    revoked.add("n2", 1000.0 + 3600)
    assert "n1" in revoked and "n2" in revoked and "n3" not in revoked
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as fh:
        fh.write("torn-line-without-expiry\nn4 not-a-number\n")  # a power cut mid-write
    now[0] += 120
    again = Revoked(path, now=lambda: now[0])  # a restart
    assert "n1" not in again and "n2" in again
    assert path.read_text() == "n2 4600\n"  # compacted: expired and torn lines gone
    now[0] += 3600
    assert "n2" not in again


def test_an_unreadable_revocation_file_is_one_line(tmp_path: Path) -> None:
    from agent.web.auth import Revoked

    path = tmp_path / "revoked"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(WebError, match=r"web: cannot read the revoked sessions .*revoked"):
        Revoked(path)
