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
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.router_env import RouterEnv, chat

TIMEOUTS = {"client_header_s": 1.0, "client_body_idle_s": 0.5, "client_body_s": 1.5}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterEnv]:
    tmp = tmp_path_factory.mktemp("bounds")
    with RouterEnv.start(tmp, n_onprem=1, overrides={"timeouts": TIMEOUTS}) as env:
        yield env


def refusals(env: RouterEnv, status: int) -> float:
    """requests_total for refusals made before a request was read (route none)."""
    text = env.client.get("/metrics").text
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


def slow_heads(env: RouterEnv, count: int) -> None:
    """`count` connections that each send a partial head, then one byte every 0.3 s (so
    only the head timeout can end them). Each must get 408 and be closed; /livez must
    answer all along."""
    selector = selectors.DefaultSelector()
    opened = 0
    answers: dict[socket.socket, bytes] = {}
    try:
        while opened < count:
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((env.router.host, env.router.port))
            selector.register(sock, selectors.EVENT_WRITE)
            answers[sock] = b""
            opened += 1
        started: dict[socket.socket, float] = {}
        closed: dict[socket.socket, float] = {}
        end = time.monotonic() + 60 + count / 200  # a bound on the test, not a speed goal
        next_trickle = 0.0
        livez = []
        with httpx.Client(base_url=env.router.url, timeout=10) as probe:
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
    slow_heads(env, 300)
    assert refusals(env, 408) == before + 300


@pytest.mark.slow
def test_ten_thousand_slow_heads(env: RouterEnv) -> None:
    """10,000, or as many as the hard fd limit allows: the router runs in this process,
    so both ends of each connection count."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(10_000, (hard - 1000) // 2)
    if count < 1000:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low")
    try:
        slow_heads(env, count)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
