"""The router's HTTP/1.1 protocol (router/http_protocol.py) on a real uvicorn server and raw
sockets: keep-alive, pipelining, chunked answers, HEAD, 100-continue, bad requests, app
errors, disconnects, idle timeout. The router itself runs on this protocol in every test
that uses tests/fixtures/router_env.py."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from router.http_protocol import RUNNING, HttpProtocol
from router.testing.serve import ServerThread

SEEN: list[str] = []  # what the app observed (disconnects)


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/gone":
        while (await receive())["type"] != "http.disconnect":
            pass
        SEEN.append("disconnect")
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path == "/slow":
        await asyncio.sleep(0.3)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    answer = json.dumps({
        "method": scope["method"], "path": path, "query": scope["query_string"].decode(),
        "length": len(body), "host": dict(scope["headers"]).get(b"host", b"").decode(),
    }).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(app, http=HttpProtocol, timeout_keep_alive=1, lifespan="off") as s:
        yield s


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return sock


def read_answer(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One answer off `sock` (content-length, chunked, or up to the close)."""
    while b"\r\n\r\n" not in buffer:
        _recv(sock, buffer)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
    buffer[:] = rest
    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(buffer) < size:
            _recv(sock, buffer)
        body = bytes(buffer[:size])
        del buffer[:size]
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = _read_chunked(sock, buffer)
    else:
        while _recv(sock, buffer, allow_eof=True):
            pass
        body = bytes(buffer)
        buffer.clear()
    return status, headers, body


def _read_chunked(sock: socket.socket, buffer: bytearray) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in buffer:
            _recv(sock, buffer)
        size_line, _, _ = bytes(buffer).partition(b"\r\n")
        size = int(size_line, 16)
        need = len(size_line) + 2 + size + 2
        while len(buffer) < need:
            _recv(sock, buffer)
        body += bytes(buffer[len(size_line) + 2 : len(size_line) + 2 + size])
        del buffer[:need]
        if size == 0:
            return body


def _recv(sock: socket.socket, buffer: bytearray, allow_eof: bool = False) -> bool:
    data = sock.recv(65536)
    if not data and not allow_eof:
        raise ConnectionError("closed early")
    buffer += data
    return bool(data)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def post(path: str, body: bytes = b"", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_keep_alive_answers_several_requests_on_one_connection(server):
    with connect(server) as sock:
        buffer = bytearray()
        for i in range(3):
            sock.sendall(post(f"/echo/{i}?x=%d" % i, b"a" * i))
            status, headers, body = read_answer(sock, buffer)
            assert status == b"HTTP/1.1 200 OK"
            assert headers[b"content-type"] == b"application/json"
            assert json.loads(body) == {
                "method": "POST", "path": f"/echo/{i}", "query": f"x={i}", "length": i,
                "host": "t",
            }  # fmt: skip


def test_percent_encoded_path_is_decoded(server):
    with connect(server) as sock:
        sock.sendall(b"GET /a%20b HTTP/1.1\r\nHost: t\r\n\r\n")
        _, _, body = read_answer(sock, bytearray())
        assert json.loads(body)["path"] == "/a b"


def test_pipelined_requests_are_answered_in_order(server):
    with connect(server) as sock:
        sock.sendall(post("/slow", b"1") + post("/fast", b"22") + post("/fast2", b"333"))
        buffer = bytearray()
        answers = [json.loads(read_answer(sock, buffer)[2]) for _ in range(3)]
        assert [(a["path"], a["length"]) for a in answers] == [
            ("/slow", 1), ("/fast", 2), ("/fast2", 3),
        ]  # fmt: skip


def test_an_answer_of_unknown_length_is_chunked_and_the_connection_stays_usable(server):
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(post("/stream"))
        _, headers, body = read_answer(sock, buffer)
        assert headers[b"transfer-encoding"] == b"chunked"
        assert body == b"onetwothree"
        sock.sendall(post("/after"))
        assert json.loads(read_answer(sock, buffer)[2])["path"] == "/after"


def test_http_1_0_and_connection_close_end_the_connection(server):
    for request in (
        b"GET /old HTTP/1.0\r\n\r\n",
        b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ):
        with connect(server) as sock:
            sock.sendall(request)
            status, headers, body = read_answer(sock, bytearray())
            assert status == b"HTTP/1.1 200 OK" and headers[b"connection"] == b"close"
            assert json.loads(body)["method"] == "GET"
            assert closed_by_peer(sock)


def test_head_gets_the_headers_without_the_body(server):
    with connect(server) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.sendall(post("/next"))  # a body would be read as the next answer's head
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            _recv(sock, buffer)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        assert b"content-length: " in head and head.startswith(b"HTTP/1.1 200 OK")
        buffer[:] = rest
        assert json.loads(read_answer(sock, buffer)[2])["path"] == "/next"


def test_expect_100_continue_is_answered_when_the_app_reads_the_body(server):
    with connect(server) as sock:
        sock.sendall(post("/big", extra="Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", b"Content-Length: 5"))  # fmt: skip
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            _recv(sock, buffer)
        assert bytes(buffer).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buffer[: len(b"HTTP/1.1 100 Continue\r\n\r\n")]
        sock.sendall(b"hello")
        assert json.loads(read_answer(sock, buffer)[2])["length"] == 5


def test_a_large_chunked_request_body_arrives_whole(server):
    payload = b"x" * 300_000  # past the read high-water mark: reading pauses and resumes
    pieces = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 50_000]), payload[i : i + 50_000])
        for i in range(0, len(payload), 50_000)
    )
    with connect(server) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + pieces + b"0\r\n\r\n"
        )  # fmt: skip
        assert json.loads(read_answer(sock, bytearray())[2])["length"] == len(payload)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
)
def test_bad_requests_get_a_plain_error_and_a_close(server, request_bytes, status):
    with connect(server) as sock:
        sock.sendall(request_bytes)
        answer, headers, _ = read_answer(sock, bytearray())
        assert answer.split(b" ")[1] == status and headers[b"connection"] == b"close"
        assert closed_by_peer(sock)


def test_an_app_exception_is_a_500_and_a_close(server):
    with connect(server) as sock:
        sock.sendall(post("/boom"))
        status, _, body = read_answer(sock, bytearray())
        assert status == b"HTTP/1.1 500 Internal Server Error" and body
        assert closed_by_peer(sock)


def test_the_app_hears_the_client_go_away(server):
    SEEN.clear()
    with connect(server) as sock:
        sock.sendall(post("/gone"))
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not SEEN and time.monotonic() < deadline:
        time.sleep(0.02)
    assert SEEN == ["disconnect"]


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server):
    with connect(server) as sock:
        sock.sendall(post("/once"))
        read_answer(sock, bytearray())
        started = time.monotonic()
        sock.settimeout(5)
        assert closed_by_peer(sock)
        assert 0.5 < time.monotonic() - started < 4  # timeout_keep_alive=1 (+ timer slack)


class RecordingTransport:
    """Counts writes: a whole answer must leave in one (one syscall, one TCP segment)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_extra_info(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...


def test_a_whole_answer_leaves_in_one_write():
    class Config:
        loaded, loaded_app, timeout_keep_alive = True, staticmethod(app), 5

    class State:
        def __init__(self) -> None:
            self.connections: set = set()
            self.default_headers = [(b"date", b"today")]

    async def run() -> list[bytes]:
        proto = HttpProtocol(Config(), State(), {}, asyncio.get_running_loop())
        transport = RecordingTransport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(post("/one", b"abc"))
        for _ in range(5):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        return transport.writes

    writes = asyncio.run(run())
    assert not RUNNING  # the request's task held until it ended, then let go
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\ndate: today\r\n")
    assert writes[0].endswith(b'"length": 3, "host": "t"}')
