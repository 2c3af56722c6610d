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
    .venv/bin/python benchmarks/router/servers.py --router-ab REV [--ab-paths P ...] --rounds 5

`--router-ab REV` measures the whole router (`edgepack router`, the way bench.py starts it)
from HEAD and from REV, interleaved; with `--ab-paths`, the second tree is HEAD with only
those paths from REV (e.g. `--router-ab 8297841 --ab-paths router/upstreams/onprem.py`:
the pool on aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402
import procs  # noqa: E402

APP = "router.testing.openai_server:FakeOpenAI"
EMPTY_APP = "servers:empty_app"  # what is left is the server's own cost


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


def servers(app: str = APP) -> dict[str, list[str]]:
    py = sys.executable
    uv = [
        py,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--no-proxy-headers",  # as the router runs
    ]
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
        out["granian"] = [
            str(granian),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--no-ws",
            app,
        ]
    return out


def start(name: str, argv: list[str]) -> procs.Server:
    port = procs.free_port()
    argv = [*argv, "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=f"{procs.ROOT}{os.pathsep}{HERE}")
    return procs.Server(
        name, argv, port, "/health", env=env, cpus=None if name == "upstream" else procs.PROXY_CPUS
    ).wait()


def server_rounds(rounds: int, seconds: float, work: Path, app: str = APP) -> dict:
    running = {name: start(name, argv) for name, argv in servers(app).items()}
    try:
        return _interleaved(running, load.lua_script([BODY], {}, work), rounds, seconds)
    finally:
        for s in running.values():
            s.stop()


def _interleaved(running: dict, script: Path, rounds: int, seconds: float) -> dict:
    """Warm each server up, then `rounds` of one wrk cell each (c=16, round-robin);
    medians of req/s, p50 and the server's CPU µs per request."""
    import bench

    url = "/v1/chat/completions"
    for s in running.values():
        load.run_wrk(s.url + url, script, 16, 1)
    res: dict[str, list[dict]] = {n: [] for n in running}
    for _ in range(rounds):
        for n, s in running.items():
            res[n].append(bench.measure(s, s.url + url, script, 16, seconds))
    return {
        n: {
            m: round(statistics.median(r[m] for r in rs), 2)
            for m in ("rps", "p50_ms", "cpu_us_per_req")
        }
        for n, rs in res.items()
    }


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
    out: dict[str, list[float]] = {k: [] for k in CLIENTS}
    try:
        for _ in range(rounds):
            for kind in out:
                out[kind].append(uvloop.run(_client_cpu(kind, url, n)))
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


def _tree(root: Path, work: Path, rev: str, paths: list[str]) -> Path:
    """`rev`'s files in a new folder under `work`; with `paths`, HEAD's files with only
    those taken from `rev`."""
    tree = Path(tempfile.mkdtemp(dir=work))
    git = ["git", "-C", str(root)]
    base = "HEAD" if paths else rev
    archive = subprocess.run([*git, "archive", base], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    for path in paths:
        old = subprocess.run([*git, "show", f"{rev}:{path}"], capture_output=True, check=True)
        (tree / path).write_bytes(old.stdout)
    return tree


def router_ab(rev: str, paths: list[str], rounds: int, seconds: float, work: Path) -> dict:
    """The whole router, HEAD vs `rev` (or HEAD with `paths` from `rev`), each its own
    process in front of one upstream; wrk at c=16 with the eval split's prompts,
    interleaved; the router process's CPU µs per request."""
    import bench

    up = procs.upstream(0.0)
    routers = {}
    other = f"{','.join(paths)}@{rev}" if paths else rev
    try:
        for name, tree_rev in ((other, rev), ("HEAD", "HEAD")):
            tree = _tree(procs.ROOT, work, tree_rev, paths if tree_rev != "HEAD" else [])
            routers[name] = procs.router(up.url, work, tree=tree)
        script = load.lua_script(load.chat_bodies(bench.texts()), {}, work)
        return _interleaved(routers, script, rounds, seconds)
    finally:
        for s in routers.values():
            s.stop()
        up.stop()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--requests", type=int, default=3000, help="per client and round")
    p.add_argument("--clients-only", action="store_true")
    p.add_argument("--servers-only", action="store_true")
    p.add_argument("--pin", action="store_true", help="servers under test on a core of their own")
    p.add_argument("--empty-app", action="store_true", help="servers answer from an empty app")
    p.add_argument(
        "--router-ab",
        metavar="REV",
        help="only: the whole router, HEAD vs REV (or HEAD with --ab-paths from REV)",
    )
    p.add_argument("--ab-paths", nargs="*", default=[], metavar="PATH")
    args = p.parse_args()
    if args.pin:
        procs.pin()
    before = Path("/proc/loadavg").read_text().split()[:3]
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.router_ab:
            result["router"] = router_ab(
                args.router_ab, args.ab_paths, args.rounds, args.seconds, Path(tmp)
            )
            args.clients_only, args.rounds = True, 0
        if not args.clients_only:
            app = EMPTY_APP if args.empty_app else APP
            result["servers"] = server_rounds(args.rounds, args.seconds, Path(tmp), app)
        if args.rounds and not args.servers_only:
            result["clients"] = client_rounds(args.rounds, args.requests)
    result["loadavg"] = {"before": before, "after": Path("/proc/loadavg").read_text().split()[:3]}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
