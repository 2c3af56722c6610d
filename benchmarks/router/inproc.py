"""The router's own CPU per request, without sockets: the ASGI app called in-process with an
upstream pool that answers at once. Separates the router's code from uvicorn/aiohttp/kernel
costs and from the machine's load (CPU time, not wall time). After the warm-up, start-up
objects are frozen out of the GC as the server does (router.server.quiet_gc), so a full
collection does not rescan them in the measured rounds. Variants, interleaved:
production wiring (the resilience steps), core only (pass-through steps), core without the
per-request log line.

    .venv/bin/python benchmarks/router/inproc.py [--n 3000] [--rounds 5] [--profile [--sort K]]
    # A/B against another revision's router/, in the same process and rounds:
    mkdir -p /tmp/base && git archive REV router | tar -x -C /tmp/base
    .venv/bin/python benchmarks/router/inproc.py --n 400 --rounds 40 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.schema_io import load_model  # noqa: E402
from router import logs  # noqa: E402
from router.app import build_app  # noqa: E402
from router.config import RouterConfig  # noqa: E402
from router.server import quiet_gc  # noqa: E402
from router.steps import Steps  # noqa: E402
from router.upstreams.base import UpstreamReply  # noqa: E402

ANSWER = b'{"id":"x","object":"chat.completion","choices":[{"message":{"content":"ok"}}]}'


class InstantPool:
    name = "onprem"
    reply = UpstreamReply  # the baseline's own class for its pool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def usable(self) -> bool:
        return True

    async def send(self, ctx) -> UpstreamReply:
        return self.reply(200, "application/json", body=ANSWER, upstream="instant")


def bodies() -> list[bytes]:
    path = ROOT / "recipes/data/sensitivity/eval.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        json.dumps({"model": "m", "messages": [{"role": "user", "content": r["text"]}]}).encode()
        for r in rows
    ]


CONFIG = {
    "onprem": {"upstreams": [{"name": "instant", "url": "http://127.0.0.1:9"}]},
    "admission": {"per_upstream_limit": 256},
}


def app_for(steps: Steps | None):
    cfg = load_model(RouterConfig, Path("<bench>"), data=CONFIG)
    return build_app(cfg, steps=steps, pools={"onprem": InstantPool()})


# `from router.x`, `from router import`, `import router.x`, "router.sensitivity..." (registry)
ROUTER_IMPORT = re.compile(r"(?<=from )router(?=[. ])|(?<=import )router(?=\.)|(?<=\")router(?=\.)")


def baseline_app(tree: Path):
    """The production wiring of `tree`/router (another revision), imported as package
    `router_base` in this process: both trees then run in the same interleaved rounds, as
    separate processes on this shared machine differ by more than most changes."""
    pkg = Path(tempfile.mkdtemp(prefix="inproc-")) / "router_base"
    shutil.copytree(tree / "router", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for path in pkg.rglob("*.py"):
        path.write_text(ROUTER_IMPORT.sub("router_base", path.read_text()))
    sys.path.insert(0, str(pkg.parent))
    mod = lambda name: importlib.import_module(f"router_base.{name}")  # noqa: E731
    pool = InstantPool()
    pool.reply = mod("upstreams.base").UpstreamReply
    mod("logs").SINK = logs.SINK
    cfg = load_model(mod("config").RouterConfig, Path("<bench>"), data=CONFIG)
    return mod("app").build_app(cfg, pools={"onprem": pool})


async def drive(app, payloads: list[bytes], n: int) -> float:
    sent: list = []

    async def send(message) -> None:
        sent.append(message)

    start = time.process_time()
    for i in range(n):
        body = payloads[i % len(payloads)]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 5000),
            "http_version": "1.1",
            "asgi": {"version": "3.0"},
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive(messages=messages):
            return messages.pop() if messages else {"type": "http.disconnect"}

        await app(scope, receive, send)
    elapsed = time.process_time() - start
    assert sent[0]["status"] == 200, sent[0]
    return elapsed / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--sort", default="tottime", help="pstats order with --profile (e.g. ncalls)")
    p.add_argument("--baseline", type=Path, help="folder with another revision's router/")
    args = p.parse_args()
    payloads = bodies()
    logs.setup("info")
    logs.SINK = io.StringIO()  # request lines are built and batched, then dropped
    variants = {
        "production": app_for(None),
        "core": app_for(Steps()),
        "core-nolog": app_for(Steps()),
    }
    if args.baseline:
        variants["baseline"] = baseline_app(args.baseline)
    results: dict[str, list[float]] = {k: [] for k in variants}

    async def run() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for app in variants.values():  # start pools, warm up
                await stack.enter_async_context(app.lifespan_context())
                await drive(app, payloads, 200)
            quiet_gc()  # as the server does after start-up (router/drain.py)
            await measure()

    async def measure() -> None:
        for _ in range(args.rounds):
            for name, app in variants.items():
                logging.getLogger("edgepack.router").disabled = name.endswith("nolog")
                results[name].append(await drive(app, payloads, args.n))
                logs.SINK.seek(0)
                logs.SINK.truncate()
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile(time.process_time)
            prof.enable()
            await drive(variants["production"], payloads, args.n)
            prof.disable()
            pstats.Stats(prof).sort_stats(args.sort).print_stats(40)

    asyncio.run(run())
    print(
        json.dumps({k: round(statistics.median(v), 1) for k, v in results.items()}),
        "median,",
        json.dumps({k: round(min(v), 1) for k, v in results.items()}),
        "best µs CPU per request (of",
        args.rounds,
        "rounds), loadavg",
        Path("/proc/loadavg").read_text().split()[:3],
    )
    if args.baseline:
        pairs = zip(results["production"], results["baseline"], strict=True)
        ratio = statistics.median(new / old for new, old in pairs)
        print(f"production/baseline: {ratio:.3f} (median of the per-round ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
