"""The router's own CPU per request, without sockets: the ASGI app called in-process with an
upstream pool that answers at once. Separates the router's code from uvicorn/aiohttp/kernel
costs and from the machine's load (CPU time, not wall time). After the warm-up, start-up
objects are frozen out of the GC as the server does (router.server.quiet_gc), so a full
collection does not rescan them in the measured rounds. Variants, interleaved:
production wiring (the resilience steps), core only (pass-through steps), core without the
per-request log line.

    .venv/bin/python benchmarks/router/inproc.py [--n 3000] [--rounds 5] [--profile [--sort K]]
    # A/B against another revision's router/, in the same process and rounds:
    .venv/bin/python benchmarks/router/inproc.py --n 400 --rounds 40 --rev REV
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from router import logs
from router.app import build_app
from router.config import RouterConfig
from router.schema_io import load_model
from router.server import quiet_gc
from router.steps import Steps
from router.upstreams.base import UpstreamReply

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


CONFIG = {
    "onprem": {"upstreams": [{"name": "instant", "url": "http://127.0.0.1:9"}]},
    "admission": {"per_upstream_limit": 256},
}


def app_for(steps: Steps | None):
    cfg = load_model(RouterConfig, Path("<bench>"), data=CONFIG)
    return build_app(cfg, steps=steps, pools={"onprem": InstantPool()})


def baseline_app(tree: Path):
    """The production wiring of `tree`/router (another revision), imported beside this one:
    both trees then run in the same interleaved rounds, as separate processes on this shared
    machine differ by more than most changes."""
    mod = common.import_router(tree)
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
    common.ab_args(p)
    args = p.parse_args()
    payloads = common.chat_bodies(common.eval_texts())
    logs.setup("info")
    logs.SINK = io.StringIO()  # request lines are built and batched, then dropped
    variants = {
        "production": app_for(None),
        "core": app_for(Steps()),
        "core-nolog": app_for(Steps()),
    }
    if args.rev:
        tree = common.checkout(args.rev, args.rev_paths)
        variants["production" + common.rev_name(args.rev, args.rev_paths)] = baseline_app(tree)
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()

    def one(name: str) -> float:
        logging.getLogger("edgepack.router").disabled = name.endswith("nolog")
        us = loop.run_until_complete(drive(variants[name], payloads, args.n))
        logs.SINK.seek(0)
        logs.SINK.truncate()
        return us

    try:
        for app in variants.values():  # start pools, warm up
            loop.run_until_complete(stack.enter_async_context(app.lifespan_context()))
            loop.run_until_complete(drive(app, payloads, 200))
        quiet_gc()  # as the server does after start-up (router/drain.py)
        results = common.round_robin({name: partial(one, name) for name in variants}, args.rounds)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile(time.process_time)
            prof.enable()
            loop.run_until_complete(drive(variants["production"], payloads, args.n))
            prof.disable()
            pstats.Stats(prof).sort_stats(args.sort).print_stats(40)
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
    print(
        json.dumps({k: round(statistics.median(v), 1) for k, v in results.items()}),
        "median,",
        json.dumps({k: round(min(v), 1) for k, v in results.items()}),
        "best µs CPU per request (of",
        args.rounds,
        "rounds), loadavg",
        common.loadavg(),
    )
    if args.rev:
        ratio = common.median_ratio(results["production"], results.popitem()[1])
        print(f"production/production{common.rev_name(args.rev, args.rev_paths)}: {ratio:.3f} "
              "(median of the per-round ratios)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
