"""The users file: names, roles and scrypt password hashes, kept in a small YAML file.

Each hash carries its own parameters (``scrypt$N$r$p$salt$hash``, base64), so the cost can be
raised later without invalidating existing passwords. The file is re-read when it changes: a
user added with ``adduser`` can log in without restarting the server, and a removed one is out
at the next request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.config.loader import read_yaml
from agent.errors import AgentError, ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per hash: OWASP's scrypt minimum
_NAME = re.compile(r"^[A-Za-z0-9_.\-@]{1,64}$")
MIN_PASSWORD = 8


class UsersError(AgentError):
    """The users file is unreadable or malformed, or a user cannot be added."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + 2**20)
    return "$".join(("scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check against a stored hash; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            maxmem=2 * 128 * int(n) * int(r) + 2**20, dklen=len(want),
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Users:
    """The users of one file, reloaded when its modification time changes."""

    def __init__(self, path: Path, roles: tuple[str, ...]) -> None:
        self.path = path
        self.roles = roles
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self.get("")  # a malformed file fails at start, not at the first login

    def get(self, name: str) -> User | None:
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = (0, 0)
            if stamp != self._stamp:
                self._users = read_users(self.path, self.roles)
                self._stamp = stamp
            return self._users.get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.get(name)
        if user is None:
            verify_password(password, _dummy_hash())  # same cost whether or not the name exists
            return None
        return user if verify_password(password, user.password_hash) else None


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password")


def read_users(path: Path, roles: tuple[str, ...]) -> dict[str, User]:
    if not path.exists():
        return {}
    try:  # the bounded loader: a users file is no way to make the agent parse a YAML bomb
        parsed = read_yaml(path, expand_env=False)  # hashes hold '$', never variables
    except ConfigError as exc:
        raise UsersError(f"users file {exc}") from exc
    if parsed.problems:
        raise UsersError(f"users file {parsed.problems[0]}")
    doc = parsed.data or {}
    entries = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise UsersError(f"users file {path}: expected 'users:' mapping names to {{role, password}}")
    users = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("role") not in roles or not entry.get("password"):
            raise UsersError(f"users file {path}: user {name!r} needs a role ({', '.join(roles)}) and a hash")
        users[str(name)] = User(str(name), entry["role"], str(entry["password"]))
    return users


def add_user(path: Path, name: str, role: str, password: str, roles: tuple[str, ...]) -> bool:
    """Add or replace ``name``; return True when it replaced an existing user. Written atomically."""
    if not _NAME.match(name):
        raise UsersError(f"user name {name!r}: 1-64 letters, digits, '_', '-', '.', '@'")
    if role not in roles:
        raise UsersError(f"--role {role!r}: expected one of {', '.join(roles)}")
    if len(password) < MIN_PASSWORD:
        raise UsersError(f"the password must have at least {MIN_PASSWORD} characters")
    users = read_users(path, roles)
    doc = {"users": {u.name: {"role": u.role, "password": u.password_hash} for u in users.values()}}
    doc["users"][name] = {"role": role, "password": hash_password(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(doc, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return name in users
