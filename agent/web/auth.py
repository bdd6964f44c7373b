"""Sessions, CSRF tokens and failed-login limiting.

A session is a cookie ``payload.signature``: the user name, when it was issued, a random nonce
and a fingerprint of the user's password hash, signed with HMAC-SHA256 under a key kept in a
file (created 0600 on first start). So sessions survive a restart, changing a password ends
every session of that user, and nothing needs a session table. The CSRF token of a session is
HMAC(key, "csrf:" + nonce): a token stolen from one session is useless with another.

Logging out ends the session on the server too, not only in the browser: its nonce goes on a
revocation list (:class:`Revoked`) until the session would have expired anyway, kept in a file
beside the key, so a cookie copied before the logout (a shared workstation, a proxy log) is
refused from then on, across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.fsutil import write_atomic
from agent.web.config import WebError

log = structlog.get_logger(__name__)

SESSION_COOKIE = "session"
PRELOGIN_COOKIE = "prelogin"  # a nonce so that even the login form carries a CSRF token


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    issued: float
    nonce: str
    fingerprint: str


def revoked_beside(secret: Path) -> Revoked:
    """The revocation list kept next to the signing key (``{key file}.revoked``)."""
    return Revoked(secret.with_name(secret.name + ".revoked"))


def load_secret(path: Path) -> bytes:
    """The signing key, created on first use (32 random bytes, owner-only)."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
        key = path.read_bytes()
    except FileExistsError:  # another process created it meanwhile
        key = path.read_bytes()
    except OSError as exc:
        raise WebError(f"web: cannot read or create the secret key {path}: {exc.strerror or exc}") from exc
    if len(key) < 16:
        raise WebError(f"web: the secret key {path} is shorter than 16 bytes")
    return key


class Revoked:
    """Nonces of sessions ended by logout, each until its session's expiry; in memory and, with a
    ``path``, in an append-only file (``nonce expiry`` per line, fsynced) compacted at start."""

    MAX = 100_000  # a bound on memory; logouts need a valid session each, so this is never near

    def __init__(self, path: Path | None, now: Callable[[], float] = time.time) -> None:
        self._path, self._now = path, now
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WebError(f"web: cannot read the revoked sessions {path}: {exc.strerror or exc}") from exc
        now = self._now()
        for line in text.splitlines():
            nonce, _, until = line.partition(" ")
            try:
                expiry = float(until)
            except ValueError:
                continue  # a line torn by a power cut: that session expires on its own
            if expiry > now and nonce:
                self._until[nonce] = expiry
        kept = "".join(f"{n} {t:.0f}\n" for n, t in self._until.items())
        try:
            write_atomic(path, kept, prepare=lambda tmp: tmp.chmod(0o600))
        except OSError as exc:
            raise WebError(f"web: cannot write the revoked sessions {path}: {exc.strerror or exc}") from exc

    def add(self, nonce: str, until: float) -> None:
        with self._lock:
            now = self._now()
            if len(self._until) >= self.MAX:
                self._until = {n: t for n, t in self._until.items() if t > now}
            self._until[nonce] = until
            if self._path is None:
                return
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, f"{nonce} {until:.0f}\n".encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:  # revoked for this run; logged, the logout itself goes on
                why = exc.strerror or str(exc)
                log.warning("session_revocation_not_saved", path=str(self._path), error=why)

    def __contains__(self, nonce: str) -> bool:
        until = self._until.get(nonce)
        return until is not None and until > self._now()


class Signer:
    """Issues and checks session cookies and CSRF tokens under one key."""

    def __init__(self, key: bytes, max_age_s: int) -> None:
        self._key = key
        self.max_age_s = max_age_s

    def _mac(self, data: bytes) -> str:
        return (
            base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest()).decode().rstrip("=")
        )

    def fingerprint(self, password_hash: str) -> str:
        return self._mac(b"pw:" + password_hash.encode())[:16]

    def issue(self, user: str, password_hash: str) -> str:
        doc = {
            "u": user,
            "t": int(time.time()),
            "n": secrets.token_urlsafe(16),
            "f": self.fingerprint(password_hash),
        }
        payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
        return f"{payload}.{self._mac(payload.encode())}"

    def check(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is absent, forged, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(str(doc["u"]), float(doc["t"]), str(doc["n"]), str(doc["f"]))
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - session.issued > self.max_age_s:
            return None
        return session

    def csrf(self, nonce: str) -> str:
        return self._mac(b"csrf:" + nonce.encode())

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(nonce))


class LoginLimiter:
    """At most ``max_failures`` failed logins per user name and per client address in a sliding window."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, user: str, address: str) -> bool:
        now = time.monotonic()
        with self._lock:
            keys = (f"user:{user}", f"addr:{address}")
            hit = any(len(self._recent(k, now)) >= self.max_failures for k in keys)
        if hit:
            log.warning("login_rate_limited", user=user, address=address)
        return hit

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"user:{user}", f"addr:{address}"):
                self._recent(key, now).append(now)
        log.warning("login_failed", user=user, address=address)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)
