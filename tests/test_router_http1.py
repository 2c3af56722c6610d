"""router/upstreams/http1.py against real servers on 127.0.0.1: router.testing's OpenAI
server under uvicorn for the normal exchange, raw asyncio servers for misbehaviour (early
close, odd chunking, slow or huge heads, `Connection: close`, refused ports, garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from router.testing.openai_server import FakeOpenAI
from router.testing.serve import ServerThread
from router.upstreams import http1
from router.upstreams.http1 import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    Http1Pool,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
)

JSON = {"content-type": "application/json"}
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def openai():
    fake = FakeOpenAI(name="gpu")
    with ServerThread(fake) as server:
        yield fake, server.url


RUNNER = {"run": asyncio.run}


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Every test on both loops: the router serves on uvloop, the tests' servers on either."""
    RUNNER["run"] = uvloop.run if request.param == "uvloop" else asyncio.run
    yield request.param
    RUNNER["run"] = asyncio.run


def run(coro: Awaitable) -> object:
    return RUNNER["run"](coro)  # type: ignore[arg-type]


# --- against the OpenAI-protocol test server -----------------------------------------------


def test_post_reuses_one_keep_alive_connection(openai):
    fake, url = openai

    async def main():
        pool = Http1Pool(url, max_connections=4)
        statuses, bodies = [], []
        for i in range(5):
            body = b'{"messages": [], "n": %d}' % i
            r = await pool.request("POST", "/v1/chat/completions", JSON, body, timeout=5)
            statuses.append(r.status)
            bodies.append(await r.read())
        r_health = await pool.request("GET", "/health", timeout=5)
        health = (r_health.status, await r_health.read())
        counts = (pool.connections, pool.idle)
        await pool.close()
        return statuses, bodies, r.headers, health, counts

    statuses, bodies, headers, health, counts = run(main())
    assert statuses == [200] * 5 and all(b"answer from gpu" in b for b in bodies)
    assert headers["content-type"] == "application/json" and "server" in headers  # lower-cased
    assert fake.bodies[-1] == b'{"messages": [], "n": 4}'  # the body went out intact
    assert health == (200, b'{"ok":true}')
    assert counts == (1, 1)  # six exchanges, one connection


def test_at_most_max_connections_in_flight(openai):
    fake, url = openai
    fake.latency_s, fake.max_in_flight = 0.05, 0

    async def main():
        pool = Http1Pool(url, max_connections=3)
        replies = await asyncio.gather(
            *(pool.request("POST", "/v1/completions", JSON, b"{}", timeout=10) for _ in range(12))
        )
        opened = pool.connections
        await pool.close()
        return [r.status for r in replies], opened

    try:
        statuses, opened = run(main())
    finally:
        fake.latency_s = 0.0
    assert statuses == [200] * 12 and opened == 3 and fake.max_in_flight == 3


def test_stream_yields_sse_events_as_they_arrive(openai):
    fake, url = openai
    fake.chunk_delay_s, fake.stream_chunks = 0.15, 3

    async def main():
        pool = Http1Pool(url)
        start = time.monotonic()
        r = await pool.request(
            "POST", "/v1/chat/completions", JSON, b'{"stream": true}', timeout=10, stream=True
        )
        arrivals, chunks = [], []
        async for chunk in r:
            arrivals.append(time.monotonic() - start)
            chunks.append(chunk)
        idle = pool.idle
        await pool.close()
        return r, chunks, arrivals, idle

    try:
        r, chunks, arrivals, idle = run(main())
    finally:
        fake.chunk_delay_s = 0.0
    assert r.headers["content-type"] == "text/event-stream"
    assert b"".join(chunks).count(b"data: ") == 4 and chunks[-1] == b"data: [DONE]\n\n"
    assert all(c.startswith(b"data: ") for c in chunks)  # chunk sizes decoded away
    assert arrivals[0] < arrivals[-1] - 0.3  # the first event came before the last was sent
    assert idle == 1  # a finished stream gives its connection back


def test_unread_stream_closed_early_drops_its_connection(openai):
    fake, url = openai
    fake.chunk_delay_s = 0.2

    async def main():
        pool = Http1Pool(url)
        r = await pool.request(
            "POST", "/v1/chat/completions", JSON, b'{"stream": true}', timeout=10, stream=True
        )
        first = await r.__anext__()
        r.close()
        await asyncio.sleep(0.05)
        state = (pool.connections, pool.idle)
        again = await pool.request("GET", "/health", timeout=5)
        await pool.close()
        return first, state, again.status

    try:
        first, state, status = run(main())
    finally:
        fake.chunk_delay_s = 0.0
    assert first.startswith(b"data: ") and state == (0, 0) and status == 200


def test_header_with_a_line_break_is_refused_before_sending(openai):
    fake, url = openai
    before = fake.requests

    async def main():
        pool = Http1Pool(url)
        try:
            headers = {"x-request-id": "a\r\nx-injected: 1"}
            await pool.request("POST", "/v1/completions", headers, b"{}", timeout=5)
        finally:
            await pool.close()

    with pytest.raises(ValueError, match="line break"):
        run(main())
    assert fake.requests == before


# --- raw servers that misbehave ------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def get_once(handler: Handler) -> http1.Response:
    """One GET / from a fresh pool to a raw server; the pool is closed, the answer kept."""
    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        r = await pool.request("GET", "/", timeout=5)
        await pool.close()
        return r


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, dict]]:
    """A TCP server on 127.0.0.1; `handler(reader, writer, n)` gets the n-th connection,
    which is closed when it returns."""
    stats = {"connections": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats["connections"] += 1
        try:
            await handler(reader, writer, stats["connections"])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", stats
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def test_close_mid_body_is_connection_lost_after_the_head():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            with pytest.raises(ConnectionLost) as info:
                await pool.request("POST", "/x", JSON, b"{}", timeout=5)
            await asyncio.sleep(0.01)
            return info.value, pool.connections

    error, connections = run(main())
    assert error.answered and not isinstance(error, ProtocolError) and connections == 0


def test_chunked_body_split_byte_by_byte_is_decoded():
    chunked = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"

    async def handler(reader, writer, n):
        for _ in range(2):  # two requests on the same connection
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(len(chunked)):
                writer.write(chunked[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async def main():
        async with raw_server(handler) as (url, stats):
            pool = Http1Pool(url)
            a = await (await pool.request("POST", "/x", JSON, b"{}", timeout=5)).read()
            r = await pool.request("GET", "/y", timeout=5, stream=True)
            b = b"".join([c async for c in r])
            await pool.close()
            return a, b, stats["connections"]

    assert run(main()) == (b"hello, world", b"hello, world", 1)


def test_slow_head_hits_the_deadline_and_aborts_the_connection():
    async def handler(reader, writer, n):
        await read_request(reader)
        await asyncio.sleep(1.0)
        writer.write(OK)

    async def main():
        async with raw_server(handler) as (url, _stats):
            pool = Http1Pool(url)
            start = time.monotonic()
            with pytest.raises(ReadTimeout) as info:
                await pool.request("POST", "/x", JSON, b"{}", timeout=0.2)
            elapsed = time.monotonic() - start
            await asyncio.sleep(0.05)
            return info.value, elapsed, pool.connections

    error, elapsed, connections = run(main())
    assert 0.15 < elapsed < 0.6 and not error.answered and connections == 0


def test_connection_close_is_honoured():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.5)  # keep our side open: the client must close, not reuse

    async def main():
        async with raw_server(handler) as (url, stats):
            pool = Http1Pool(url)
            bodies = [await (await pool.request("GET", "/", timeout=5)).read() for _ in range(3)]
            return bodies, stats["connections"], pool.idle

    bodies, connections, idle = run(main())
    assert bodies == [b"ok"] * 3 and connections == 3 and idle == 0


def test_body_delimited_by_the_end_of_the_connection():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"the end")
        await writer.drain()
        writer.close()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            r = await pool.request("GET", "/", timeout=5)
            return await r.read(), pool.idle

    assert run(main()) == (b"until the end", 0)


def test_refused_port_is_a_connect_error_with_nothing_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused

        async def main():
            pool = Http1Pool(f"http://127.0.0.1:{port}", connect_timeout_s=2)
            start = time.monotonic()
            with pytest.raises(ConnectError) as info:
                await pool.request("POST", "/x", JSON, b"{}", timeout=5)
            return info.value, time.monotonic() - start, pool.connections

        error, elapsed, connections = run(main())
    assert not isinstance(error, ConnectTimeout) and not error.sent
    assert elapsed < 1.0 and connections == 0 and "refused" in str(error).lower()


def test_connect_timeout_on_a_full_listen_queue():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once the queue is full, SYNs go unanswered
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                f.connect(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.05)

        async def main():
            pool = Http1Pool(f"http://127.0.0.1:{port}", connect_timeout_s=0.3)
            start = time.monotonic()
            with pytest.raises(ConnectTimeout) as info:
                await pool.request("POST", "/x", JSON, b"{}", timeout=5)
            return info.value, time.monotonic() - start, pool.connections

        try:
            error, elapsed, connections = run(main())
        finally:
            for f in fillers:
                f.close()
    assert 0.25 < elapsed < 1.5 and not error.sent and connections == 0


def test_huge_head_is_a_protocol_error():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n")
        await writer.drain()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            with pytest.raises(ProtocolError, match="head over"):
                await pool.request("GET", "/", timeout=5)
            await asyncio.sleep(0.01)
            return pool.connections

    assert run(main()) == 0


def test_garbage_and_bytes_after_the_response_are_protocol_errors():
    async def handler(reader, writer, n):
        await read_request(reader)
        if n == 1:
            writer.write(b"SMTP ready\r\n\r\n")
        else:
            writer.write(OK + b"HTTP/1.1 200 OK\r\n")  # an answer nobody asked for follows
        await writer.drain()
        await asyncio.sleep(0.2)

    async def main():
        async with raw_server(handler) as (url, _stats):
            pool = Http1Pool(url)
            with pytest.raises(ProtocolError):
                await pool.request("GET", "/", timeout=5)
            r = await pool.request("GET", "/", timeout=5)
            await asyncio.sleep(0.05)
            return r.status, await r.read(), pool.idle, pool.connections

    status, body, idle, connections = run(main())
    assert (status, body) == (200, b"ok") and idle == 0 and connections == 0  # not reused


def test_idle_connection_closed_by_the_server_is_not_reused():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(OK)
        await writer.drain()  # then closes: keep-alive was promised, not kept

    async def main():
        async with raw_server(handler) as (url, stats):
            pool = Http1Pool(url)
            first = await pool.request("GET", "/", timeout=5)
            await asyncio.sleep(0.1)  # the server's FIN arrives while the connection is idle
            idle = pool.idle
            second = await pool.request("GET", "/", timeout=5)
            await pool.close()
            return first.status, idle, second.status, stats["connections"]

    assert run(main()) == (200, 0, 200, 2)


def test_idle_timeout_retires_old_connections():
    async def handler(reader, writer, n):
        for _ in range(3):
            await read_request(reader)
            writer.write(OK)
            await writer.drain()

    async def main():
        async with raw_server(handler) as (url, stats):
            pool = Http1Pool(url, idle_timeout_s=0.1)
            await pool.request("GET", "/", timeout=5)
            await pool.request("GET", "/", timeout=5)  # within the idle timeout: reused
            reused = stats["connections"]
            await asyncio.sleep(0.2)
            await pool.request("GET", "/", timeout=5)
            await pool.close()
            return reused, stats["connections"]

    assert run(main()) == (1, 2)


def test_interim_103_is_skipped():
    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK)
        await writer.drain()

    async def main():
        r = await get_once(handler)
        return r.status, await r.read(), "link" in r.headers

    assert run(main()) == (200, b"ok", False)


def test_pool_timeout_when_every_connection_stays_busy():
    async def handler(reader, writer, n):
        await read_request(reader)
        await asyncio.sleep(0.5)
        writer.write(OK)
        await writer.drain()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url, max_connections=1)
            slow = asyncio.create_task(pool.request("GET", "/", timeout=5))
            await asyncio.sleep(0.05)
            with pytest.raises(PoolTimeout) as info:
                await pool.request("GET", "/", timeout=0.1)
            r = await slow
            await pool.close()
            return info.value, r.status, pool.connections

    error, status, connections = run(main())
    assert not error.sent and status == 200 and connections <= 1


def test_cancelled_request_aborts_its_connection():
    seen = []

    async def handler(reader, writer, n):
        await read_request(reader)
        try:
            seen.append(await asyncio.wait_for(reader.read(), 2))  # b"": the client went
        except ConnectionResetError:
            seen.append(b"")

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            task = asyncio.create_task(pool.request("GET", "/", timeout=5))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            return pool.connections, seen

    assert run(main()) == (0, [b""])  # the server saw the client go


def test_a_lagging_stream_consumer_pushes_back_on_the_server():
    payload = b"x" * (8 * 1024 * 1024)

    async def main():
        done = asyncio.Event()

        async def handler(reader, writer, n):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
            writer.write(payload)
            await writer.drain()  # blocks while the client does not read
            done.set()

        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            r = await pool.request("GET", "/", timeout=10, stream=True)
            await asyncio.sleep(0.3)  # the consumer lags
            blocked = not done.is_set()
            body = b"".join([c async for c in r])
            await asyncio.wait_for(done.wait(), 5)
            await pool.close()
            return blocked, len(body), body == payload

    assert run(main()) == (True, len(payload), True)


def test_each_request_keeps_its_own_deadline():
    async def handler(reader, writer, n):
        await read_request(reader)
        await asyncio.sleep(0.6)
        writer.write(OK)
        await writer.drain()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            start = time.monotonic()

            async def timed(timeout: float) -> tuple[str, float]:
                try:
                    r = await pool.request("GET", "/", timeout=timeout)
                    outcome = (await r.read()).decode()
                except ReadTimeout:
                    outcome = "timeout"
                return outcome, time.monotonic() - start

            # a later deadline first, then an earlier one: the pool's timer must move up
            results = await asyncio.gather(timed(5), timed(0.4), timed(0.2))
            await pool.close()
            return results

    (late, t_late), (mid, t_mid), (early, t_early) = run(main())
    assert (late, mid, early) == ("ok", "timeout", "timeout")
    assert 0.15 < t_early < 0.35 < t_mid < 0.55 < t_late


def test_https_verifies_the_certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader, writer):
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            untrusted = Http1Pool(url)  # the system's CAs: this certificate is not theirs
            with pytest.raises(ConnectError, match="certificate verify failed"):
                await untrusted.request("GET", "/", timeout=5)
            trusted = Http1Pool(url, ssl=ssl.create_default_context(cafile=str(cert)))
            r = await trusted.request("GET", "/", timeout=5)
            await trusted.close()
            return r.status, await r.read()
        finally:
            server.close()

    assert run(main()) == (200, b"ok")


def test_big_body_arrives_intact(openai):
    fake, url = openai
    body = b'{"messages": [], "pad": "' + bytes(range(97, 123)) * 40_000 + b'"}'  # ~1 MB

    async def main():
        pool = Http1Pool(url)
        r = await pool.request("POST", "/v1/completions", JSON, body, timeout=10)
        await pool.close()
        return r.status

    assert run(main()) == 200 and fake.bodies[-1] == body


def test_close_lets_requests_in_flight_finish():
    async def handler(reader, writer, n):
        await read_request(reader)
        await asyncio.sleep(0.2)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(1)

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url)
            slow = asyncio.create_task(pool.request("GET", "/", timeout=5))
            await asyncio.sleep(0.05)
            await pool.close()
            r = await slow
            await asyncio.sleep(0.01)
            with pytest.raises(ConnectError, match="closed"):
                await pool.request("GET", "/", timeout=5)
            return r.status, await r.read(), pool.connections

    assert run(main()) == (200, b"ok", 0)  # answered, then its connection was closed


def test_request_lines_per_method_and_path_and_bad_paths_refused_every_time():
    heads: list[bytes] = []

    async def handler(reader, writer, n):
        while True:
            heads.append(await read_request(reader))
            writer.write(OK)
            await writer.drain()

    async def main():
        async with raw_server(handler) as (url, _):
            pool = Http1Pool(url + "/base/")
            for method, path, body in [("GET", "/a", b""), ("POST", "/a", b""), ("GET", "/a", b"")]:
                await (await pool.request(method, path, JSON, body, timeout=5)).read()
            refused = 0
            for _ in range(2):  # the request-line cache never holds a refused path
                with pytest.raises(ValueError, match="invalid request path"):
                    await pool.request("GET", "/a b", timeout=5)
                refused += 1
            await pool.close()
            return url.removeprefix("http://"), refused

    host, refused = run(main())
    get, post, get_again = heads
    assert get.startswith(b"GET /base/a HTTP/1.1\r\nhost: %s\r\n" % host.encode())
    assert post.startswith(b"POST /base/a HTTP/1.1\r\nhost: %s\r\n" % host.encode())
    assert b"content-length: 0\r\n" in post and b"content-length" not in get
    assert get_again == get and refused == 2 and len(heads) == 3


def test_header_names_lower_cased_repeats_joined_and_the_name_cache_bounded():
    many = b"".join(b"X-Odd-%d: v\r\n" % i for i in range(400))  # a hostile variety of names

    async def handler(reader, writer, n):
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: 1\r\nx-twice: 2\r\n"
            + many
            + b"Content-Length: 2\r\n\r\nok"
        )
        await writer.drain()

    async def main():
        r = await get_once(handler)
        return r.headers, r.body

    headers, body = run(main())
    assert headers["content-type"] == "text/plain" and headers["x-twice"] == "1, 2"
    assert headers["x-odd-399"] == "v" and len(headers) == 403 and body == b"ok"
    assert len(http1._KEYS) <= 256


def test_body_is_at_hand_unless_streamed(openai):
    _fake, url = openai

    async def main():
        pool = Http1Pool(url)
        whole = await pool.request("POST", "/v1/chat/completions", JSON, b"{}", timeout=5)
        streamed = await pool.request(
            "POST", "/v1/chat/completions", JSON, b'{"stream": true}', timeout=5, stream=True
        )
        before = streamed.body
        rest = await streamed.read()
        await pool.close()
        return whole.body, before, rest, streamed.body

    whole, before, rest, after = run(main())
    assert b"answer from gpu" in whole and before is None and rest == after
    assert rest.count(b"data: ") >= 2
