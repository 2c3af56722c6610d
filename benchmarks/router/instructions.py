"""The whole router's user-space instructions per request, the working tree against REV:
a count that does not move with the machine's load, for changes too small to see through
this VM's ±20% timing noise.

    .venv/bin/python benchmarks/router/instructions.py --rev HEAD [--requests 1500]
    .venv/bin/python benchmarks/router/instructions.py     # the working tree alone

Each variant runs as the real `edgepack router` (production wiring, rules-only, the same
config as bench.py) under valgrind's callgrind without cache simulation, in front of one
upstream (upstream.py, not under valgrind). After a warm-up the counters are zeroed
(`callgrind_control -z`), exactly `--requests` chat requests with the eval split's prompts
go through from 16 keep-alive connections, and the counters are dumped: instructions per
request = the dump's total / requests. It covers everything the router process executes:
the server protocol, the request path, the on-prem client, uvloop, RE2, the interpreter;
not the kernel. Under valgrind the router is ~50× slower than the load, so it is saturated
and reads ~16 requests per loop pass, as at c=16 in bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import procs

CONCURRENCY = 16
HEALTH = {"interval_s": 3600}  # no checks while counting: they tick by wall time, not requests


def requests(port: int) -> list[bytes]:
    """One raw HTTP/1.1 request per eval prompt, keep-alive."""
    out = []
    for body in common.chat_bodies(common.eval_texts()):
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def drive(port: int, n: int) -> int:
    """`n` requests over `CONCURRENCY` connections; the number answered 200."""
    raw = requests(port)
    ok = 0

    async def worker(k: int, count: int) -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(count):
                writer.write(raw[(k + i * CONCURRENCY) % len(raw)])
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                ok += head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    await asyncio.gather(*(worker(k, n // CONCURRENCY) for k in range(CONCURRENCY)))
    return ok


def callgrind(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def measure(
    tree: Path,
    upstream_url: str,
    n: int,
    work: Path,
    keep: Path | None = None,
    extra=None,
    python: str | None = None,
) -> dict:
    out = Path(tempfile.mkdtemp(dir=work)) / "callgrind.out"  # callgrind adds .1 … per dump
    # time-driven work (log batches flushed after 100 ms, the server's 100 ms tick) counts
    # per request as the wall time per request: a high priority keeps it steady under load
    prefix = ["nice", "-n", "-15"] if os.geteuid() == 0 else []
    prefix += ["valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}"]
    onprem = {"upstreams": [{"name": "bench", "url": upstream_url}], "health": HEALTH}
    config = {"onprem": onprem, "limits": {"deadline_s": 600}, **(extra or {})}
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict/set layouts every run
    server = procs.router(
        upstream_url,
        work,
        tree=tree,
        config=config,
        prefix=prefix,
        env=env,
        wait_s=600,
        python=python,
    )
    port = server.port
    try:
        asyncio.run(drive(port, 512))  # warm-up: every prompt once (lazy phone metadata, ...)
        callgrind(server.proc.pid, "-z")
        started = time.monotonic()
        ok = asyncio.run(drive(port, n))
        seconds = time.monotonic() - started
        callgrind(server.proc.pid, "-d")
        dumps = sorted(out.parent.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
        total = int(re.search(r"^totals:\s+(\d+)", dumps[-1].read_text(), re.M).group(1))
        if keep is not None:  # for callgrind_annotate
            keep.write_bytes(dumps[-1].read_bytes())
    finally:
        server.stop()
    sent = n // CONCURRENCY * CONCURRENCY
    return {"instructions_per_request": round(total / sent), "ok": ok, "requests": sent,
            "seconds": round(seconds, 1)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.ab_args(p)
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--keep", type=Path, help="a folder for the callgrind dumps (NAME.out)")
    p.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="top-level router config keys to replace, as JSON: what a step costs, e.g. "
        '\'{"classifier": {"detectors": []}}\' or \'{"logging": {"level": "warning"}}\'',
    )
    p.add_argument(
        "--python",
        help="the interpreter that runs the router (a venv's bin/python; default: this one)",
    )
    args = p.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    result: dict = {"loadavg_before": common.loadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = {"tree": common.ROOT}
        if args.rev:
            rev = common.rev_name(args.rev, args.rev_paths)
            trees = {rev: common.checkout(args.rev, args.rev_paths, work), **trees}
        up = procs.upstream(0.0)
        try:
            for name, tree in trees.items():
                keep = args.keep / f"{name}.out" if args.keep else None
                result[name] = measure(
                    tree, up.url, args.requests, work, keep, args.config, args.python
                )
        finally:
            up.stop()
    if args.rev:
        base = result[rev]["instructions_per_request"]
        result["ratio"] = round(result["tree"]["instructions_per_request"] / base, 4)
    result["loadavg_after"] = common.loadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
