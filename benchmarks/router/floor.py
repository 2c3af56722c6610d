"""The floor for a Python reverse proxy here: no routing logic at all, against the router.

A bare proxy (uvloop + httptools, a keep-alive pool of upstream connections) forwards each
POST to the upstream and the answer back: `floor-cb` from parser callbacks only, `floor-task`
with one task and one future per request (the shape any async handler has). The router
(`edgepack router`, rules-only, production wiring) runs beside them; wrk at c=16 with the
eval split's chat bodies, interleaved; CPU µs per request of each proxy process.

    .venv/bin/python benchmarks/router/floor.py --rounds 5 --seconds 2 [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import load, procs


class Parsed(asyncio.Protocol):
    """A connection whose bytes go to an httptools parser; the body is collected."""

    def __init__(self, parser_class) -> None:
        self.parser, self.body = parser_class(self), []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


class Upstream(Parsed):
    """One keep-alive connection to the upstream; hands each answer to its waiter."""

    def __init__(self, pool: list[Upstream]) -> None:
        import httptools

        super().__init__(httptools.HttpResponseParser)
        self.pool = pool
        self.client: Client | None = None
        self.waiter: asyncio.Future | None = None

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        answer += b"content-length: %d\r\n\r\n%s" % (len(body), body)
        if self.waiter is not None:
            self.waiter.set_result(answer)
            return
        client, self.client = self.client, None
        self.pool.append(self)
        client.transport.write(answer)


class Client(Parsed):
    """One downstream connection: each request goes to an idle upstream connection."""

    def __init__(self, pool: list[Upstream], with_task: bool) -> None:
        import httptools

        super().__init__(httptools.HttpRequestParser)
        self.pool, self.with_task = pool, with_task
        self.loop = asyncio.get_running_loop()

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: upstream\r\n"
        request += b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
            len(body), body,
        )  # fmt: skip
        if self.with_task:
            self.loop.create_task(self.forward(request))
            return
        upstream = self.pool.pop()
        upstream.client = self
        upstream.transport.write(request)

    async def forward(self, request: bytes) -> None:
        upstream = self.pool.pop()
        upstream.waiter = self.loop.create_future()
        upstream.transport.write(request)
        answer = await upstream.waiter
        upstream.waiter = None
        self.pool.append(upstream)
        self.transport.write(answer)


async def serve(port: int, upstream_port: int, with_task: bool) -> None:
    loop = asyncio.get_running_loop()
    pool: list[Upstream] = []
    for _ in range(80):  # more than wrk's connections: one idle upstream per request
        _, conn = await loop.create_connection(lambda: Upstream(pool), "127.0.0.1", upstream_port)
        pool.append(conn)
    server = await loop.create_server(lambda: Client(pool, with_task), "127.0.0.1", port)
    await server.serve_forever()


def measure(rounds: int, seconds: float, work: Path) -> dict:
    up = procs.upstream(0.0)
    running: dict[str, common.Server] = {}
    try:
        for name in ("floor-cb", "floor-task"):
            port = common.free_port()
            argv = [sys.executable, __file__, "--serve", name, str(port), up.url]
            server = common.Server(name, argv, port, "/health", cpus=common.PROXY_CPUS)
            running[name] = server.wait()
        running["router"] = procs.router(up.url, work)
        script = load.lua_script(common.chat_bodies(common.eval_texts()), {}, work)
        return load.compare(running, script, rounds, seconds)
    finally:
        for s in [*running.values(), up]:
            s.stop()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--pin", action="store_true", help="proxies on a core of their own")
    p.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        import uvloop

        kind, port, upstream = args.serve
        uvloop.run(serve(int(port), int(upstream.rsplit(":", 1)[1]), kind == "floor-task"))
        return 0
    if args.pin:
        common.pin()
    before = common.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.rounds, args.seconds, Path(tmp))
    out = {"proxies": result, "loadavg_before": before, "loadavg_after": common.loadavg()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
