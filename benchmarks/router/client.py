"""The on-prem client alone (optionally against another revision's): CPU µs per request.

    .venv/bin/python benchmarks/router/client.py --rev HEAD --rounds 9
    .venv/bin/python benchmarks/router/client.py --rev HEAD --rounds 9 --upstream uvicorn

Variants, interleaved round-robin in this one process (uvloop), each POSTing `--requests`
times from 16 concurrent tasks after a warm-up; the process's user and system CPU apart
(getrusage), medians over the rounds:

- `bare`: an asyncio Protocol per task that writes a fixed request and waits for the end of
  the chunked answer (no parsing, pool, headers or deadline): the floor.
- `http1` / `http1@REV`: router/upstreams/http1.py's `Http1Pool.request` + `read()`.
- `onprem` / `onprem@REV`: `OnPremPool.usable` and `send` as the router calls them (one
  upstream, the breaker as outlier, a RequestContext made per request); REV's router/ is
  imported beside this one (common.import_router).

`--upstream bare` (default) answers from a bare uvloop Protocol with the bytes uvicorn
sends for router.testing's OpenAI server, in one write, so the upstream is not the
bottleneck; `--upstream uvicorn` is that server itself (three writes per answer, slower:
the client then wakes up more often per request). Note /proc/loadavg: the cores are shared.

CPU time on these shared cores moves by ±20% between rounds; `--instructions` counts
instead (valgrind's cachegrind, deterministic): each variant over a fake transport that
answers every write on the next loop pass, run for N and 2N requests, the difference
divided by N: the client's own user-space instructions per request, no kernel, no noise.

    .venv/bin/python benchmarks/router/client.py --rev HEAD --instructions
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import servers

BODY = servers.BODY
PATH = "/v1/chat/completions"
HEADERS = servers.HEADERS
ANSWER_BODY = (
    b'{"id": "cmpl-1", "object": "chat.completion", "created": 1795848422, "model": "bench", '
    b'"choices": [{"index": 0, "finish_reason": "stop", '
    b'"message": {"role": "assistant", "content": "answer from bench"}}]}'
)
ANSWER = (  # what uvicorn sends for router.testing's OpenAI server, here in one write
    b"HTTP/1.1 200 OK\r\ndate: Sat, 28 Nov 2026 06:47:01 GMT\r\nserver: uvicorn\r\n"
    b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n0\r\n\r\n"
    % (len(ANSWER_BODY), ANSWER_BODY)
)


def bare_upstream(port: int) -> None:
    """Answer every request with ANSWER at once (httptools finds where requests end)."""
    import httptools
    import uvloop

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport):  # type: ignore[override]
            self.transport, self.parser = transport, httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(ANSWER)

    async def serve() -> None:
        await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port, backlog=1024)
        await asyncio.Event().wait()

    uvloop.run(serve())


class Bare(asyncio.Protocol):
    """The floor: a fixed request out, bytes in until the chunked answer's last chunk."""

    def __init__(self, request: bytes) -> None:
        self.request, self.buf = request, b""
        self.done: asyncio.Future | None = None

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.buf.endswith(b"0\r\n\r\n"):
            self.buf = b""
            self.done.set_result(None)  # type: ignore[union-attr]

    async def one(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        await self.done


Modules = Callable[[str], ModuleType]
"""A router tree's modules by their name under router/ ("upstreams.http1")."""


def variants(rev: str | None, paths: list[str]) -> dict[str, tuple[str, Modules | None]]:
    """name → (kind, the router tree's modules)."""
    here: Modules = lambda name: importlib.import_module(f"router.{name}")  # noqa: E731
    out: dict[str, tuple[str, Modules | None]] = {
        "bare": ("bare", None),
        "http1": ("http1", here),
        "onprem": ("onprem", here),
    }
    if rev:
        old = common.import_router(common.checkout(rev, paths))
        name = common.rev_name(rev, paths)
        out |= {f"http1{name}": ("http1", old), f"onprem{name}": ("onprem", old)}
    return out


async def bare_client(url: str, c: int):
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST {PATH} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(lambda: Bare(request), host, int(port)))[1] for _ in range(c)
    ]

    async def close() -> None:
        for conn in conns:
            conn.transport.close()

    return (lambda i: conns[i].one()), close


async def http1_client(mod: Modules, url: str, fake: bool = False):
    http1 = mod("upstreams.http1")
    pool = http1.Http1Pool(url, max_connections=64)
    if fake:
        fake_connections(http1, pool)
    headers = {**HEADERS, "x-request-id": "0" * 32}

    async def one(i: int) -> None:
        r = await pool.request("POST", PATH, headers, BODY, timeout=30)
        await r.read()

    return one, pool.close


async def onprem_client(mod: Modules, url: str, fake: bool = False):
    """OnPremPool.send as the router calls it: one upstream, the breaker as outlier."""
    http1, breaker, context = mod("upstreams.http1"), mod("breaker"), mod("context")
    config = mod("config").OnPremConfig(upstreams=[{"name": "bench", "url": url}])
    breakers = breaker.BreakerSet(breaker.BreakerConfig())
    pool = mod("upstreams.onprem").OnPremPool(config, mod("metrics").RouterMetrics(), breakers)
    Api, RequestContext = context.Api, context.RequestContext
    for m in pool.members:  # start() without its health checker
        m.http = http1.Http1Pool(m.base, max_connections=64)
        if fake:
            fake_connections(http1, m.http)
    headers = {**HEADERS, "accept": "*/*", "host": "router", "user-agent": "bench"}

    async def one(i: int) -> None:
        ctx = RequestContext("0" * 32, Api.chat, BODY, "application/json", "*/*", headers)
        ctx.deadline = time.monotonic() + 30
        assert pool.usable()  # the handler asks before each request
        reply = await pool.send(ctx)
        assert reply.status == 200 and reply.body, reply

    async def close() -> None:
        for m in pool.members:
            await m.http.close()

    return one, close


async def measure(variant: tuple, url: str, n: int, c: int = 16) -> tuple[float, float]:
    """User and system CPU µs per request of `n` POSTs from `c` tasks (after a warm-up)."""
    kind, mod = variant
    if kind == "bare":
        one, close = await bare_client(url, c)
    elif kind == "http1":
        one, close = await http1_client(mod, url)
    else:
        one, close = await onprem_client(mod, url)

    async def worker(i: int, k: int) -> None:
        for _ in range(k):
            await one(i)

    await asyncio.gather(*(worker(i, 20) for i in range(c)))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker(i, n // c) for i in range(c)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    await close()
    done = n // c * c
    user = (after.ru_utime - before.ru_utime) / done * 1e6
    return user, (after.ru_stime - before.ru_stime) / done * 1e6


class FakeTransport:
    """Answers each write with ANSWER on the next loop pass, as one read would."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol, self.loop, self.closing = protocol, asyncio.get_running_loop(), False

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.protocol.data_received, ANSWER)  # type: ignore[attr-defined]

    def writelines(self, parts) -> None:
        self.write(b"".join(parts))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    close = abort

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def fake_connections(http1, pool) -> None:
    """Let `pool` (an Http1Pool) open FakeTransport connections instead of sockets."""

    async def connect(loop, deadline):
        pool._count += 1
        conn = http1._Connection(pool)
        conn.connection_made(FakeTransport(conn))
        conn.counted = True
        return conn

    pool._connect = connect


async def fake_run(variant: tuple, n: int, c: int = 16) -> None:
    """`n` requests from `c` tasks over FakeTransport (after a warm-up), nothing measured:
    valgrind counts from outside."""
    kind, mod = variant
    url = "http://127.0.0.1:9"
    if kind == "bare":
        conns = [Bare(b"POST / HTTP/1.1\r\n\r\n") for _ in range(c)]
        for conn in conns:
            conn.connection_made(FakeTransport(conn))

        def one(i: int):
            return conns[i].one()

    elif kind == "http1":
        one, _close = await http1_client(mod, url, fake=True)
    else:
        one, _close = await onprem_client(mod, url, fake=True)

    async def worker(i: int, k: int) -> None:
        for _ in range(k):
            await one(i)

    await asyncio.gather(*(worker(i, 20) for i in range(c)))
    await asyncio.gather(*(worker(i, n // c) for i in range(c)))


def instructions(rev: str | None, paths: list[str], n: int) -> dict[str, int]:
    """User-space instructions per request of each variant (see the module docstring)."""
    ab = ["--rev", rev, "--rev-paths", *paths] if rev else []
    out = {}
    for name in variants(rev, paths):
        counts = []
        for k in (n, 2 * n):
            argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
            argv += ["--cachegrind-out-file=/dev/null", sys.executable, __file__, *ab]
            argv += ["--fake", name, "--requests", str(k)]
            env = dict(os.environ, PYTHONHASHSEED="0")
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
            refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
            counts.append(int(refs.group(1).replace(",", "")))  # type: ignore[union-attr]
        out[name] = round((counts[1] - counts[0]) / (n // 16 * 16))
    return out


def run(rev: str | None, paths: list[str], rounds: int, n: int, upstream: str) -> dict:
    import uvloop

    kinds = variants(rev, paths)
    if upstream == "bare":
        up = servers.start("bare-upstream", [sys.executable, __file__, "--serve"])
    else:
        up = servers.start("upstream", servers.servers()["uvicorn-httptools"])
    try:
        runs = common.round_robin(
            {name: (lambda v=v: uvloop.run(measure(v, up.url, n))) for name, v in kinds.items()},
            rounds,
        )
    finally:
        up.stop()
    out = {}
    for name, rs in runs.items():
        total = [u + s for u, s in rs]
        out[name] = {
            "cpu_us_per_req": round(statistics.median(total), 1),
            "user": round(statistics.median(u for u, _ in rs), 1),
            "sys": round(statistics.median(s for _, s in rs), 1),
            "min": round(min(total), 1),
            "rounds": [round(x, 1) for x in total],
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    common.ab_args(p)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--requests", type=int, default=3000, help="per variant and round")
    p.add_argument("--upstream", choices=("bare", "uvicorn"), default="bare")
    p.add_argument("--instructions", action="store_true", help="count, under valgrind")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fake", metavar="VARIANT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        bare_upstream(args.port)
        return 0
    if args.fake:
        import uvloop

        uvloop.run(fake_run(variants(args.rev, args.rev_paths)[args.fake], args.requests))
        return 0
    if args.instructions:
        n = args.requests if args.requests != 3000 else 1600
        for name, count in instructions(args.rev, args.rev_paths, n).items():
            print(f"{name:>16} {count:>9,} instructions per request")
        return 0
    before = common.loadavg()
    result = run(args.rev, args.rev_paths, args.rounds, args.requests, args.upstream)
    for name, row in result.items():
        print(f"{name:>16} {json.dumps(row)}")
    print(f"loadavg before {before} after {common.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
