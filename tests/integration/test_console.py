"""The device console against a real agent subprocess: API, auth, faults (real uvicorn on loopback).

Every bad input the issue lists gets its HTTP error here, and the line keeps inspecting.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import agentproc
from tests.support.agentproc import AgentProcess, run_agent, write_config
from tests.support.paths import DEMO_MODEL, free_port
from tests.support.webclient import Reply, WebClient
from tests.unit.console.test_upload import png_bomb

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_user(config: Path, name: str, role: str = "technician") -> None:
    env_args = ["web", "adduser", name, "--role", role, "--config", str(config), "--password-stdin"]
    done = subprocess.run(
        [*_cmd(), *env_args], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"added {name} ({role})" in done.stdout


def _cmd() -> list[str]:
    from tests.support.agentproc import agent_command

    return agent_command()


def start_console_agent(
    work: Path, *, fps: float = 20, port: int = 1, **web: Any
) -> tuple[AgentProcess, str]:
    """A real agent on the synthetic camera (realtime) with the console on a free port and a users file."""
    config = write_config(
        work, port=port, prefix="console", source="synthetic:3",
        camera={"source": "synthetic:3", "fps": fps, "realtime": True},
        web={"listen": "127.0.0.1:0", "auth": {"users_file": str(work / "web-users.yaml")}, **web},
    )  # fmt: skip
    add_user(config, "tech")
    add_user(config, "watcher", "viewer")
    agent = AgentProcess(config)
    url = agent.wait_for_log("console_started", 60)["url"]
    return agent, url


def login(
    base: str, user: str = "tech", password: str = PASSWORD, ca: Path | None = None
) -> tuple[WebClient, Reply]:
    client = WebClient(base, ca)
    form = client.get("/login")
    token = _CSRF.search(form.text)
    assert token, form.text
    reply = client.request(
        "POST", "/login", data={"csrf": token.group(1), "username": user, "password": password, "next": "/"}
    )
    if reply.status == 303:
        client.csrf = client.get("/api/session").json()["csrf"]
    return client, reply


def inspected(client: WebClient) -> int:
    return int(client.get("/api/live").json()["counters"]["inspected"])


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, str]]:
    agent, url = start_console_agent(tmp_path_factory.mktemp("console"), max_viewers=4)
    agentproc._STARTED.remove(agent)  # one agent for the module: its tests share it (killed below)
    yield agent, url
    agent.kill()


def test_the_api_needs_a_login_and_the_pages_redirect_to_it(console: tuple[AgentProcess, str]) -> None:
    _, base = console
    anonymous = WebClient(base)
    assert anonymous.get("/api/status").status == 401
    assert anonymous.get("/api/frame.jpg").status == 401
    page = anonymous.get("/")
    assert page.status == 303 and page.headers["location"].startswith("/login")


def test_status_frame_and_defects_answer_for_a_logged_in_viewer(console: tuple[AgentProcess, str]) -> None:
    _, base = console
    client, reply = login(base, "watcher")
    assert reply.status == 303
    status = client.get("/api/status").json()
    assert status["console"]["model"]["name"] == "demo-defects"
    assert status["console"]["model"]["version"] == "1.0.0"
    frame = client.get("/api/frame.jpg")
    raw = client.get("/api/frame.jpg?raw=1")
    assert frame.status == raw.status == 200
    assert frame.body[:3] == raw.body[:3] == b"\xff\xd8\xff" and frame.body != raw.body
    deadline = time.monotonic() + 30
    while not (defects := client.get("/api/defects?limit=3").json()["defects"]):
        assert time.monotonic() < deadline, "no defect kept"
        time.sleep(0.5)
    assert len(defects) <= 3 and defects[0]["label"] != "ok"
    thumb = client.get(defects[0]["thumb"])
    assert thumb.status == 200 and thumb.body[:3] == b"\xff\xd8\xff"
    assert client.get("/api/defects?limit=-1").status == 400
    # a viewer may look but not act
    assert client.post("/api/actions/snapshot").status == 403


def test_classify_gives_the_golden_outputs_of_model_validate(console: tuple[AgentProcess, str]) -> None:
    _, base = console
    client, _ = login(base)
    expected = json.loads((DEMO_MODEL / "golden" / "expected.json").read_text())
    labels = (DEMO_MODEL / "labels.txt").read_text().split()
    validate = run_agent(["model", "validate", str(DEMO_MODEL), "--runtime", "tflite"], timeout=120)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    for name, want in expected["images"].items():
        body = (DEMO_MODEL / "golden" / name).read_bytes()
        reply = client.request("POST", "/api/classify", body=None, headers={"Content-Type": "image/png"},
                               raw=body)  # fmt: skip
        assert reply.status == 200, reply.text
        got = reply.json()
        assert got["label"] == want["label"], name
        golden = dict(zip(labels, want["scores"][got["model"]["runtime"]], strict=True))
        assert got["scores"] == pytest.approx(golden, abs=0.005), name
        assert set(got) >= {"id", "ts", "device", "frame", "model", "label", "score", "scores", "defect",
                            "over_budget", "budget_ms", "latency_ms"}  # fmt: skip


def test_bad_classify_bodies_get_clear_errors_and_the_line_goes_on(console: tuple[AgentProcess, str]) -> None:
    agent, base = console
    client, _ = login(base)
    before = inspected(client)
    t0 = time.monotonic()
    cases = {
        b"this is not an image": 415,
        png_bomb(8000): 413,  # 64 megapixels in ~70 kB: refused from its header
    }
    fifty_mb = 50 * 1024 * 1024
    status, body = _raw_post(base, client, f"Content-Length: {fifty_mb}", [b"\xff\xd8\xff" + b"\0" * 65536])
    assert status == 413 and b"larger than" in body  # refused from its declared length, unread
    chunks = [f"{0x100000:x}\r\n".encode() + b"\0" * 0x100000 + b"\r\n"] * 50  # 50 MB, no length
    status, body = _raw_post(base, client, "Transfer-Encoding: chunked", chunks)
    assert status == 413 and b"larger than" in body
    for body, status in cases.items():
        reply = client.request("POST", "/api/classify", headers={"Content-Type": "image/png"}, raw=body)
        assert reply.status == status, reply.text
        assert "\n" not in reply.json()["error"]
    no_csrf = client.request("POST", "/api/classify", headers={"Content-Type": "image/png"}, csrf=False,
                             raw=(DEMO_MODEL / "golden" / "ok_0.png").read_bytes())  # fmt: skip
    assert no_csrf.status == 403 and "CSRF" in no_csrf.json()["error"]
    assert client.post("/api/actions/snapshot", csrf=False).status == 403
    time.sleep(2)
    rate = (inspected(client) - before) / (time.monotonic() - t0)
    assert rate > 20 * 0.7, rate  # the camera's 20 fps, with room for a loaded test machine
    assert agent.proc.poll() is None


@pytest.mark.parametrize(
    "path",
    [
        "/static/console/../../../../etc/passwd",
        "/static/console/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/console/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/web/%2e%2e%2f%2e%2e%2fconsole%2fweb.py",
        "/api/defects/..%2f..%2fetc%2fpasswd/frame.jpg",
        "/api/defects/x/..%2f..%2fweb.py",
        "/defects/..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_path_traversal_in_any_url_finds_nothing(console: tuple[AgentProcess, str], path: str) -> None:
    _, base = console
    client, _ = login(base, "watcher")
    reply = _raw_get(base, path, client)
    assert reply[0] in (400, 404), reply
    assert b"root:" not in reply[1] and b"import" not in reply[1]


def _raw_get(base: str, path: str, client: WebClient) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (urllib would normalise the dots away)."""
    host, port = base.removeprefix("http://").split(":")
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _raw_post(base: str, client: WebClient, header: str, parts: list[bytes]) -> tuple[int, bytes]:
    """POST /api/classify over a socket; stops sending when the server answers early (and closes)."""
    host, port = base.removeprefix("http://").split(":")
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    head = (f"POST /api/classify HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {client.csrf}\r\n"
            f"Content-Type: image/jpeg\r\n{header}\r\nConnection: close\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(head.encode())
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body went
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), body


def open_stream(base: str, client: WebClient) -> tuple[socket.socket, int]:
    host, port = base.removeprefix("http://").split(":")
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET /api/stream.mjpg HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock, int(head.split()[1])


def viewers(client: WebClient) -> int:
    return int(client.get("/api/live").json()["viewers"])


def test_twenty_viewers_the_extra_get_503_and_a_closed_tab_frees_its_place(
    console: tuple[AgentProcess, str],
) -> None:
    agent, base = console
    client, _ = login(base, "watcher")
    before, t0 = inspected(client), time.monotonic()
    streams = [open_stream(base, client) for _ in range(20)]
    statuses = sorted(s for _, s in streams)
    assert statuses == [200] * 4 + [503] * 16
    open_ones = [sock for sock, status in streams if status == 200]
    first = open_ones[0].recv(200_000)
    assert b"--frame" in first or len(first) > 0
    assert viewers(client) == 4
    time.sleep(2)
    for sock in open_ones:  # viewers that disconnect mid-stream
        sock.close()
    for sock, status in streams:
        if status != 200:
            sock.close()
    deadline = time.monotonic() + 15
    while viewers(client) != 0:
        assert time.monotonic() < deadline, "closed streams still counted"
        time.sleep(0.2)
    rate = (inspected(client) - before) / (time.monotonic() - t0)
    assert rate > 20 * 0.7, rate
    sock, status = open_stream(base, client)  # a place is free again
    sock.close()
    assert status == 200
    assert agent.proc.poll() is None


def test_a_hundred_wrong_passwords_are_rate_limited_and_logged(console: tuple[AgentProcess, str]) -> None:
    agent, base = console
    statuses = [login(base, "tech", f"wrong-{i}")[1].status for i in range(100)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    assert agent.output.count('"event": "login_failed"') >= 5
    assert '"event": "login_rate_limited"' in agent.output or statuses.count(429) == 95


def test_a_public_address_without_users_is_refused_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=1, prefix="x", source="synthetic:1", web={"listen": "0.0.0.0:0"})
    done = run_agent(["run", "--config", str(config)])
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "web" in line]
    assert len(lines) == 1 and "not loopback" in lines[0], done.stderr


def test_trigger_and_classify_from_the_api_in_trigger_mode_on_loopback_without_users(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, port=1, prefix="x", source="synthetic:2",
        camera={"source": "synthetic:2", "mode": "trigger"}, web={"listen": "127.0.0.1:0"},
    )  # fmt: skip
    agent = AgentProcess(config)
    client = WebClient(agent.wait_for_log("console_started", 60)["url"])
    session = client.get("/api/session").json()
    assert session["user"] == "local" and session["role"] == "technician"
    assert client.post("/api/actions/trigger", csrf=False).status == 403
    client.csrf = session["csrf"]
    reply = client.post("/api/actions/trigger")
    assert reply.status == 200, reply.text
    assert reply.json()["result"]["frame"] >= 0 and reply.json()["result"]["label"]
    png = (DEMO_MODEL / "golden" / "hole_0.png").read_bytes()
    classified = client.request("POST", "/api/classify", headers={"Content-Type": "image/png"}, raw=png)
    assert classified.status == 200 and classified.json()["label"] == "hole"  # between frames, idle line
    assert client.post("/api/actions/nonsense").status == 404
    assert '"action": "trigger"' in agent.output and '"user": "local"' in agent.output
    assert agent.stop() == 0


def test_check_save_frame_writes_the_cameras_frame(tmp_path: Path) -> None:
    import cv2

    config = write_config(tmp_path, port=free_port(), prefix="x", source="synthetic:1")
    out = tmp_path / "frame.png"
    done = run_agent(["check", "--config", str(config), "--save-frame", str(out), "--timeout", "0.5"])
    assert f"frame saved to {out}" in done.stdout, done.stdout + done.stderr
    image = cv2.imread(str(out))
    assert image is not None and image.shape[2] == 3


def test_the_console_over_https_sends_secure_cookies_and_refuses_plain_http(tmp_path: Path) -> None:
    """``web.tls``: the technician's password and session never cross the plant network in clear."""
    import ssl
    import urllib.error
    import urllib.request

    from tests.support.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    agent, url = start_console_agent(
        tmp_path, tls={"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    )
    try:
        assert url.startswith("https://127.0.0.1:")
        client, reply = login(url, ca=pki.ca)
        assert reply.status == 303
        cookies = list(client.jar)
        assert cookies and all(c.secure for c in cookies)
        assert "max-age" in reply.headers.get("strict-transport-security", "").lower()
        assert inspected(client) > 0
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # not this CA's client
            urllib.request.urlopen(url + "/login", timeout=10, context=ssl.create_default_context())
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = plain.recv(4096)
        assert b"HTTP/1.1 200" not in answer and b"<form" not in answer  # no page in clear
    finally:
        agent.stop()


@pytest.mark.parametrize("fault", ["missing", "mismatched"])
def test_a_bad_tls_pair_is_one_line_at_start(tmp_path: Path, fault: str) -> None:
    from tests.support.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    key = tmp_path / "nope.key" if fault == "missing" else pki.client_key  # another certificate's key
    config = write_config(
        tmp_path, port=1, prefix="x", source="synthetic:1",
        web={"listen": "127.0.0.1:0", "tls": {"cert_file": str(pki.server_cert), "key_file": str(key)}},
    )  # fmt: skip
    done = run_agent(["run", "--config", str(config)])
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "web.tls" in line]
    assert len(lines) == 1, done.stderr
    assert ("No such file" if fault == "missing" else "KEY_VALUES_MISMATCH") in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def test_logout_ends_the_session_for_a_copied_cookie_too(tmp_path: Path) -> None:
    """A cookie copied before the logout (a shared workstation, a proxy log) is refused after it.
    An agent of its own: the module's shared one has its login limit spent by another test."""
    agent, base = start_console_agent(tmp_path)
    try:
        client, _ = login(base, "watcher")
        thief = WebClient(base)
        for cookie in client.jar:
            thief.jar.set_cookie(cookie)
        assert thief.get("/api/session").status == 200
        assert client.request("POST", "/logout", data={"csrf": client.csrf}).status == 303
        assert thief.get("/api/session").status == 401
        again, reply = login(base, "watcher")  # the user logs in again: a new session, which works
        assert reply.status == 303 and again.get("/api/session").status == 200
    finally:
        agent.stop()
