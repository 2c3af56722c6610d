"""The router's reads from its clients are bounded (config `timeouts`): slow heads are
answered 408 and closed by the server, slow or badly framed bodies are refused by the app
(408 / 400), deep JSON is a 400, and every refusal is counted in requests_total.

Against the real router (tests/fixtures/router_env.py) over raw loopback sockets. The
many-connections case runs 10,000 slow heads in the slow suite (fd limit permitting) and
300 in the fast one; /livez must answer all along."""

from __future__ import annotations

import contextlib
import json
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.testing.openai_server import FakeOpenAI
from router.testing.serve import ServerThread
from tests.fixtures.router_env import RouterEnv, chat

TIMEOUTS = {"client_header_s": 1.0, "client_body_idle_s": 0.5, "client_body_s": 1.5}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterEnv]:
    tmp = tmp_path_factory.mktemp("bounds")
    with RouterEnv.start(tmp, n_onprem=1, overrides={"timeouts": TIMEOUTS}) as env:
        yield env


def refusals(env: RouterEnv | str, status: int) -> float:
    """requests_total for refusals made before a request was read (route none)."""
    url = env if isinstance(env, str) else env.router.url
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = (
        r'^edgepack_router_requests_total\{route="none",sensitivity="unknown",'
        rf'status="{status}"\}} (\S+)$'
    )
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def exchange(env: RouterEnv, data: bytes, then: bytes = b"", pause: float = 0.0) -> bytes:
    """Send `data` (then `then` after `pause`) and read until the router closes."""
    with socket.create_connection((env.router.host, env.router.port), timeout=10) as sock:
        sock.sendall(data)
        if then:
            time.sleep(pause)
            sock.sendall(then)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head(length: int | None = None, chunked: bool = False) -> bytes:
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: r", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_body_that_stops_is_answered_408_by_the_app_and_counted(env: RouterEnv) -> None:
    before = refusals(env, 408)
    answer = exchange(env, head(length=100) + b'{"model":')
    assert status_of(answer) == 408
    assert b'"request_timeout"' in answer and b"connection: close" in answer.lower()
    assert refusals(env, 408) == before + 1


def test_a_trickled_body_is_cut_at_the_total_body_timeout(env: RouterEnv) -> None:
    body = json.dumps(chat("hello")).encode()
    with socket.create_connection((env.router.host, env.router.port), timeout=10) as sock:
        sock.sendall(head(length=len(body)))
        sock.settimeout(0.2)  # one byte per 0.2 s: never idle 0.5 s, never done in 1.5 s
        answer = b""
        for byte in body:
            sock.sendall(bytes([byte]))
            with contextlib.suppress(TimeoutError):
                answer = sock.recv(65536)
                break
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 408
    assert b'"request_timeout"' in answer
    assert env.onprem[0].requests == 0


def test_bad_chunk_framing_in_a_request_is_a_400(env: RouterEnv) -> None:
    before = refusals(env, 400)
    answer = exchange(env, head(chunked=True) + b"zz\r\n{}\r\n0\r\n\r\n")
    assert status_of(answer) == 400
    assert b"malformed request body framing" in answer
    assert refusals(env, 400) == before + 1


def test_a_bad_request_line_is_a_400_and_counted(env: RouterEnv) -> None:
    before = refusals(env, 400)
    assert status_of(exchange(env, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    assert refusals(env, 400) == before + 1


@pytest.mark.parametrize("api", ["/v1/chat/completions", "/v1/completions", "/invocations"])
def test_deep_json_is_a_400_not_a_500(env: RouterEnv, api: str) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    if api == "/v1/chat/completions":
        body = b'{"model":"m","messages":[{"role":"user","content":"x","extra":' + deep + b"}]}"
    elif api == "/v1/completions":
        body = b'{"model":"m","prompt":"x","extra":' + deep + b"}"
    else:
        body = deep
    before = refusals(env, 400)
    answer = env.client.post(api, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "nested" in answer.json()["error"]["message"]
    assert refusals(env, 400) == before + 1


def slow_heads(url: str, count: int) -> None:
    """`count` connections that each send a partial head, then one byte every 0.3 s (so
    only the head timeout can end them). Each must get 408 and be closed; /livez must
    answer all along."""
    host, port = url.removeprefix("http://").split(":")
    selector = selectors.DefaultSelector()
    opened = 0
    answers: dict[socket.socket, bytes] = {}
    try:
        while opened < count:
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((host, int(port)))
            selector.register(sock, selectors.EVENT_WRITE)
            answers[sock] = b""
            opened += 1
        started: dict[socket.socket, float] = {}
        closed: dict[socket.socket, float] = {}
        end = time.monotonic() + 60 + count / 200  # a bound on the test, not a speed goal
        next_trickle = 0.0
        livez = []
        with httpx.Client(base_url=url, timeout=10) as probe:
            while len(closed) < count and time.monotonic() < end:
                for key, events in selector.select(timeout=0.05):
                    sock = key.fileobj
                    if events & selectors.EVENT_WRITE and sock not in started:
                        try:
                            sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n")
                        except OSError:
                            continue  # not connected yet
                        started[sock] = time.monotonic()
                        selector.modify(sock, selectors.EVENT_READ)
                    elif events & selectors.EVENT_READ:
                        try:
                            data = sock.recv(4096)
                        except OSError:
                            data = b""
                        answers[sock] += data
                        if not data:
                            closed[sock] = time.monotonic()
                            selector.unregister(sock)
                now = time.monotonic()
                if now >= next_trickle:
                    next_trickle = now + 0.3
                    for sock in started:
                        if sock not in closed:
                            with contextlib.suppress(OSError):
                                sock.send(b"X")
                    livez.append(probe.get("/livez").status_code)
        assert len(closed) == count, f"{count - len(closed)} slow heads still open"
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values())
        assert livez and set(livez) == {200}
    finally:
        for sock in answers:
            sock.close()
        selector.close()


def test_slow_heads_are_closed_with_408_and_livez_answers(env: RouterEnv) -> None:
    before = refusals(env, 408)
    slow_heads(env.router.url, 300)
    assert refusals(env, 408) == before + 300


@pytest.mark.slow
def test_ten_thousand_slow_heads(tmp_path: Path) -> None:
    """`edgepack router` in a process of its own (both ends of 10,000 connections would not
    fit this process's fd limit), in front of one test upstream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 10_500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 10,000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the router inherits it
    with ServerThread(FakeOpenAI()) as upstream:
        port = free_port()
        config = {
            "listen": {"host": "127.0.0.1", "port": port},
            "onprem": {"upstreams": [{"name": "a", "url": upstream.url}]},
            "timeouts": TIMEOUTS,
        }
        (tmp_path / "router.yaml").write_text(json.dumps(config))
        cli = "from pipeline.cli import main; main()"
        argv = [sys.executable, "-c", cli, "router", "--config", str(tmp_path / "router.yaml")]
        router = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, router)
            slow_heads(url, 10_000)
            assert refusals(url, 408) == 10_000
        finally:
            router.terminate()
            router.wait(30)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"router on {url} did not become ready")
