"""A small real HTTP client for the web apps: cookies, login through the form, CSRF from the page.

Uses only the standard library (http.cookiejar + urllib) against a real uvicorn on loopback.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

_CSRF = re.compile(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class WebClient:
    """One browser-like user agent: its own cookie jar; redirects are returned, not followed."""

    def __init__(self, base: str, ca: Path | None = None) -> None:
        """``ca``: the PEM file an HTTPS server's certificate is checked against."""
        self.base = base
        self.jar = CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()]
        if ca is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca))))
        self.opener = urllib.request.build_opener(*handlers)
        self.csrf = ""

    def request(
        self, method: str, path: str, *, data: dict[str, str] | None = None, body: Any = None,
        headers: dict[str, str] | None = None, csrf: bool = True, raw: bytes | None = None,
    ) -> Reply:  # fmt: skip
        hdrs = dict(headers or {})
        payload = None
        if data is not None:
            payload = urllib.parse.urlencode(data).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif raw is not None:  # an upload as it is (the caller sets its Content-Type)
            payload = raw
        if method != "GET" and csrf and self.csrf:
            hdrs.setdefault("X-CSRF-Token", self.csrf)
        req = urllib.request.Request(self.base + path, data=payload, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Reply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, dict(exc.headers), exc.read())

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body=body if body is not None else {}, **kw)

    def login(self, user: str, password: str) -> Reply:
        form = self.get("/login")
        token = _CSRF.search(form.text)
        assert token, form.text
        reply = self.request("POST", "/login", data={"csrf": token.group(1), "username": user,
                                                     "password": password, "next": "/review"})  # fmt: skip
        if reply.status == 303:
            page = self.get("/review")
            found = _CSRF.search(page.text)
            self.csrf = found.group(1) if found else ""
        return reply
