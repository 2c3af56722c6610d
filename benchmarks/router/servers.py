"""How the router's HTTP server and client were chosen: a quick, interleaved measurement.

Servers: the same tiny ASGI app (router.testing's OpenAI-protocol server) under
uvicorn+uvloop+httptools (as is, and with the router's own protocol,
router/http_protocol.py), uvicorn+asyncio+h11 and granian (from the benchmark venv), driven
by wrk at concurrency 16; server CPU µs per request from /proc. Clients: aiohttp (default
session and tuned), httpx and the router's own router/upstreams/http1.py posting to one
upstream (a separate uvicorn process) at concurrency 16, interleaved round-robin, CPU µs
per request of the client process (uvloop).

    .venv/bin/python benchmarks/router/servers.py --rounds 3
    .venv/bin/python benchmarks/router/servers.py --clients-only --rounds 5

The whole router against another revision: `bench.py --rev REV`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import load

HERE = Path(__file__).resolve().parent
APP = "router.testing.openai_server:FakeOpenAI"
EMPTY_APP = "benchmarks.router.servers:empty_app"  # what is left is the server's own cost


def empty_app():
    """An ASGI app (factory) that reads the body and answers a fixed JSON at once."""
    answer = b'{"id":"x","object":"chat.completion","choices":[]}'
    headers = [(b"content-type", b"application/json")]

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


UVICORN = "--host 127.0.0.1 --no-access-log --log-level warning --no-proxy-headers"  # as the router
GRANIAN = "--interface asgi --factory --host 127.0.0.1 --workers 1 --loop uvloop --no-ws"


def servers(app: str = APP) -> dict[str, list[str]]:
    py = sys.executable
    uv = [py, "-m", "uvicorn", "--factory", app, *UVICORN.split()]
    out = {
        "uvicorn-httptools": [*uv, "--loop", "uvloop", "--http", "httptools"],
        "uvicorn-h11": [*uv, "--loop", "asyncio", "--http", "h11"],
        "router-protocol": [  # uvicorn.Server with the router's own HTTP/1.1 protocol
            py,
            "-c",
            "import sys, uvicorn\n"
            "from router.http_protocol import HttpProtocol as P\n"
            f"uvicorn.run({app!r}, factory=True, host='127.0.0.1', port=int(sys.argv[-1]),"
            " loop='uvloop', http=P, access_log=False, log_level='warning',"
            " proxy_headers=False)",
        ],
    }
    granian = HERE / ".venv" / "bin" / "granian"
    if granian.exists():
        out["granian"] = [str(granian), *GRANIAN.split(), app]
    return out


def start(name: str, argv: list[str]) -> common.Server:
    port = common.free_port()
    argv = [*argv, "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=str(common.ROOT))
    cpus = None if name == "upstream" else common.PROXY_CPUS
    return common.Server(name, argv, port, "/health", env=env, cpus=cpus).wait()


def server_rounds(rounds: int, seconds: float, work: Path, app: str = APP) -> dict:
    running = {}
    try:
        for name, argv in servers(app).items():
            running[name] = start(name, argv)
        return load.compare(running, load.lua_script([BODY], {}, work), rounds, seconds)
    finally:
        for s in running.values():
            s.stop()


def _aiohttp(tuned: bool):
    import aiohttp

    if tuned:  # what can be switched off without changing the wire exchange
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=10),  # one object, not one per request
        )
    else:
        session = aiohttp.ClientSession()

    async def one(url: str) -> None:
        async with session.post(url, data=BODY, headers=HEADERS) as r:
            await r.read()

    return one, session.close


def _httpx():
    import httpx

    session = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))

    async def one(url: str) -> None:
        (await session.post(url, content=BODY, headers=HEADERS)).read()

    return one, session.aclose


def _http1():
    from router.upstreams.http1 import Http1Pool

    pools: dict[str, Http1Pool] = {}

    async def one(url: str) -> None:
        origin, _, path = url.partition("/v1/")
        pool = pools.get(origin) or pools.setdefault(origin, Http1Pool(origin, max_connections=64))
        r = await pool.request("POST", "/v1/" + path, HEADERS, BODY, timeout=10)  # a deadline
        await r.read()

    async def close() -> None:
        for pool in pools.values():
            await pool.close()

    return one, close


CLIENTS = {
    "aiohttp": lambda: _aiohttp(False),
    "aiohttp-tuned": lambda: _aiohttp(True),
    "httpx": _httpx,
    "http1": _http1,  # router/upstreams/http1.py, what the on-prem pool uses
}
HEADERS = {"content-type": "application/json"}


async def _client_cpu(kind: str, url: str, n: int, c: int = 16) -> float:
    """Client process CPU µs per request: `n` POSTs from `c` concurrent tasks."""
    one, close = CLIENTS[kind]()

    async def worker(k: int) -> None:
        for _ in range(k):
            await one(url)

    await asyncio.gather(*(worker(50 // c + 1) for _ in range(c)))  # connections + warm-up
    start_cpu = time.process_time()
    await asyncio.gather(*(worker(n // c) for _ in range(c)))
    cpu = (time.process_time() - start_cpu) / (n // c * c) * 1e6
    await close()
    return cpu


def client_rounds(rounds: int, n: int) -> dict:
    import uvloop

    up = start("upstream", servers()["uvicorn-httptools"])
    url = up.url + "/v1/chat/completions"
    try:
        runs = {k: (lambda k=k: uvloop.run(_client_cpu(k, url, n))) for k in CLIENTS}
        out = common.round_robin(runs, rounds)
    finally:
        up.stop()
    base = statistics.median(out["aiohttp"])
    return {
        k: {
            "cpu_us_per_req": round(statistics.median(v), 1),
            "vs_aiohttp": round(statistics.median(v) / base, 3),
            "rounds": [round(x, 1) for x in v],
        }
        for k, v in out.items()
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--requests", type=int, default=3000, help="per client and round")
    p.add_argument("--clients-only", action="store_true")
    p.add_argument("--servers-only", action="store_true")
    p.add_argument("--pin", action="store_true", help="servers under test on a core of their own")
    p.add_argument("--empty-app", action="store_true", help="servers answer from an empty app")
    args = p.parse_args()
    if args.pin:
        common.pin()
    result: dict = {"loadavg_before": common.loadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.clients_only:
            app = EMPTY_APP if args.empty_app else APP
            result["servers"] = server_rounds(args.rounds, args.seconds, Path(tmp), app)
        if not args.servers_only:
            result["clients"] = client_rounds(args.rounds, args.requests)
    result["loadavg_after"] = common.loadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
