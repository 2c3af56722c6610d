"""Upstreams for the overload benchmark: OpenAI-protocol servers with a real capacity.

Each server works on at most `capacity` requests at once, each for `service_s` (like a
GPU server's batch slots); the rest wait in its queue, so an overloaded server answers
late, as the real ones do. `fail_rate` of the calls answer 503 at once (an upstream
error). A request whose client disconnects is aborted (as vLLM does), so one run's
abandoned requests do not load the next. GET /stats → {"calls", "ok", "failed",
"aborted", "busy"}; POST /reset zeroes the counters.

    python upstream.py --spec main-a:8101:2:0.2:0.2 --spec small:8103:1:0.1:0.2
    (name:port:capacity:service_s:fail_rate)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from router.testing.asgi import answered_lifespan


class Upstream:
    def __init__(self, name: str, capacity: int, service_s: float, fail_rate: float, seed: int):
        self.name = name
        self.slots = asyncio.Semaphore(capacity)
        self.service_s = service_s
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.stats = {"calls": 0, "ok": 0, "failed": 0, "aborted": 0}
        self.busy = 0  # requests queued or in service now

    async def _work(self) -> None:
        async with self.slots:
            await asyncio.sleep(self.service_s)

    async def __call__(self, scope, receive, send) -> None:
        if await answered_lifespan(scope, receive, send):
            return
        path, method = scope["path"], scope["method"]
        while (await receive()).get("more_body"):
            pass
        if path == "/health":
            return await _reply(send, 200, b'{"ok":true}')
        if path == "/stats":
            return await _reply(send, 200, json.dumps({**self.stats, "busy": self.busy}).encode())
        if path == "/reset" and method == "POST":
            self.stats = {"calls": 0, "ok": 0, "failed": 0, "aborted": 0}
            return await _reply(send, 200, b"{}")
        self.stats["calls"] += 1
        if self.rng.random() < self.fail_rate:
            self.stats["failed"] += 1
            body = b'{"error":{"message":"upstream error","type":"server_error"}}'
            return await _reply(send, 503, body)
        # like vLLM: a request whose client went away is aborted, queued or running
        work = asyncio.create_task(self._work())
        gone = asyncio.create_task(_disconnected(receive))
        self.busy += 1
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.busy -= 1
        gone.cancel()
        if not work.done():
            work.cancel()
            self.stats["aborted"] += 1
            return
        self.stats["ok"] += 1
        answer = {
            "id": "x", "object": "chat.completion", "created": int(time.time()),
            "model": self.name, "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                          "total_tokens": 8},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"answer from {self.name}"}}],
        }  # fmt: skip
        await _reply(send, 200, json.dumps(answer).encode())


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _reply(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def main(specs: list[str], seed: int) -> None:
    import uvicorn

    servers = []
    for i, spec in enumerate(specs):
        name, port, capacity, service_s, fail_rate = spec.split(":")
        app = Upstream(name, int(capacity), float(service_s), float(fail_rate), seed + i)
        config = uvicorn.Config(app, host="127.0.0.1", port=int(port), log_level="warning",
                                access_log=False, backlog=4096)  # fmt: skip
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--spec", action="append", required=True)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    asyncio.run(main(args.spec, args.seed))
