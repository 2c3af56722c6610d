"""How the router's HTTP server and client were chosen: a quick, interleaved measurement.

Servers: the same tiny ASGI app (router.testing's OpenAI-protocol server) under
uvicorn+uvloop+httptools, uvicorn+asyncio+h11 and granian (from the benchmark venv), driven
by wrk at concurrency 16; server CPU µs per request from /proc. Client: aiohttp vs httpx
posting to one upstream at concurrency 16, CPU µs per request of the client process.

    .venv/bin/python benchmarks/router/servers.py --rounds 3
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402
import procs  # noqa: E402

APP = "router.testing.openai_server:FakeOpenAI"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


def servers() -> dict[str, list[str]]:
    py = sys.executable
    uv = [
        py,
        "-m",
        "uvicorn",
        "--factory",
        APP,
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    out = {
        "uvicorn-httptools": [*uv, "--loop", "uvloop", "--http", "httptools"],
        "uvicorn-h11": [*uv, "--loop", "asyncio", "--http", "h11"],
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
            APP,
        ]
    return out


def start(name: str, argv: list[str]) -> procs.Server:
    port = procs.free_port()
    argv = [*argv, "--port", str(port)]
    env = dict(os.environ, PYTHONPATH=str(procs.ROOT))
    return procs.Server(name, argv, port, "/health", env=env).wait()


def server_rounds(rounds: int, seconds: float, work: Path) -> dict:
    running = {name: start(name, argv) for name, argv in servers().items()}
    script = load.lua_script([BODY], {}, work)
    results: dict[str, list[dict]] = {n: [] for n in running}
    try:
        for s in running.values():
            load.run_wrk(s.url + "/v1/chat/completions", script, 16, 1)
        for _ in range(rounds):
            for name, s in running.items():
                before = s.cpu()
                r = load.run_wrk(s.url + "/v1/chat/completions", script, 16, seconds)
                r["cpu_us_per_req"] = (s.cpu() - before) / r["requests"] * 1e6
                results[name].append(r)
    finally:
        for s in running.values():
            s.stop()
    return {
        n: {
            m: round(statistics.median(r[m] for r in rs), 3)
            for m in ("rps", "p50_ms", "cpu_us_per_req")
        }
        for n, rs in results.items()
    }


async def _client_cpu(kind: str, url: str, n: int = 2000, c: int = 16) -> float:
    import aiohttp
    import httpx

    headers = {"content-type": "application/json"}
    if kind == "aiohttp":
        session = aiohttp.ClientSession()

        async def one() -> None:
            async with session.post(url, data=BODY, headers=headers) as r:
                await r.read()
    else:
        session = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))

        async def one() -> None:
            (await session.post(url, content=BODY, headers=headers)).read()

    async def worker(k: int) -> None:
        for _ in range(k):
            await one()

    await worker(50)
    start_cpu = time.process_time()
    await asyncio.gather(*(worker(n // c) for _ in range(c)))
    cpu = (time.process_time() - start_cpu) / n * 1e6
    await (session.close() if kind == "aiohttp" else session.aclose())
    return cpu


def client_rounds(rounds: int) -> dict:
    import uvloop

    up = start("upstream", servers()["uvicorn-httptools"])
    url = up.url + "/v1/chat/completions"
    out: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
    try:
        for _ in range(rounds):
            for kind in out:
                out[kind].append(uvloop.run(_client_cpu(kind, url)))
    finally:
        up.stop()
    return {k: {"cpu_us_per_req": round(statistics.median(v), 1)} for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    args = p.parse_args()
    before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "servers": server_rounds(args.rounds, args.seconds, Path(tmp)),
            "clients": client_rounds(args.rounds),
        }
    result["loadavg"] = {"before": before, "after": Path("/proc/loadavg").read_text().split()[:3]}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
