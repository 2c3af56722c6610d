"""Open-loop load generator: requests arrive at a fixed rate whatever the answers.

Mixed tiers (X-Priority), one deadline per request (X-Deadline-Ms, and the client gives
up at deadline + 1 s). Writes one JSON object per request: tier, status, seconds,
retry_after, route. Runs in its own process so it does not share the proxy's CPU.

    python loadgen.py --url http://127.0.0.1:8080 --rate 40 --seconds 15 --out r.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import aiohttp

TIER_MIX = ["high"] * 2 + ["normal"] * 3 + ["low"] * 5  # 20% / 30% / 50%


async def run(url: str, rate: float, seconds: float, deadline_s: float, key: str | None,
              model: str, seed: int) -> list[dict]:  # fmt: skip
    rng = random.Random(seed)
    results: list[dict] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=deadline_s + 1.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(tier: str, i: int) -> None:
            headers = {"X-Priority": tier, "X-Deadline-Ms": str(int(deadline_s * 1000))}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            body = {"model": model, "temperature": 0.7,
                    "messages": [{"role": "user", "content": f"weather question {i}"}]}  # fmt: skip
            t0 = time.monotonic()
            status, retry_after, route = 0, None, None
            try:
                async with session.post(url + "/v1/chat/completions", json=body,
                                        headers=headers) as resp:  # fmt: skip
                    await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("retry-after")
                    route = resp.headers.get("x-route")
            except TimeoutError:
                status = -1  # the client gave up: hung past the deadline
            except aiohttp.ClientError:
                status = -2
            results.append({"tier": tier, "status": status, "s": time.monotonic() - t0,
                            "retry_after": retry_after, "route": route})  # fmt: skip

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(rng.choice(TIER_MIX), i)))
        await asyncio.gather(*tasks)
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=40)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--deadline", type=float, default=5.0)
    p.add_argument("--key")
    p.add_argument("--model", default="main")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    res = asyncio.run(run(a.url, a.rate, a.seconds, a.deadline, a.key, a.model, a.seed))
    with open(a.out, "w") as f:
        for r in res:
            f.write(json.dumps(r) + "\n")
