"""Huge prompts beside small ones: the latency of small public requests while 6 MB prompts
arrive, and the memory a 6 MB prompt adds to the router.

Per router (this tree, and with --rev the same router from another revision, interleaved
round by round): `edgepack router` with the classifier model (MiniLM-L6 of the build's
shape, router/testing/model.py, unless --model names a build's) in front of the benchmark's
upstream. Each round measures, one client at a time, `--small` small chat requests (the
eval split's public prompts) alone, then the same while a second client sends 6 MB prompts
of each `--big` kind back to back; and, in a router of its own per kind, the peak RSS over
its idle RSS while it answers its first 6 MB prompt (VmHWM, reset through
/proc/PID/clear_refs; after that, freed memory stays mapped). Goals: peak RSS added
< 50 MB; loaded p99 of the small requests within 2x of the unloaded p99, none refused.

Kinds of 6 MB prompt: `prose`, one sentence repeated: more tokens than the scan budget, so
the router reads until it knows that and sends it on-prem; `read`, ~200 KB of words in
random order (under the budget, no two windows alike) padded with blank lines: the model
reads every window of it, the most model work one body can ask for.

With --stall S: also the time a request takes to be answered 504 by this tree's router
(timeouts.upstream_first_byte_s S) in front of an upstream that takes requests and never
answers them (goal: S ± 1 s).

    .venv/bin/python benchmarks/router/bounds.py [--rev main] [--rounds 3] [--small 300] \
        [--big prose,read]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socketserver
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import procs

BIG_BYTES = 6_000_000  # under limits.max_body_bytes (6 MiB) with the JSON around it


PROSE = "The weather in the park was pleasant, and the children played football until dusk. "


def big_body() -> bytes:
    """One chat request whose prompt is ~6 MB of prose no detector fires on: the model
    reads it (detectors that fire decide first, and the model would not run)."""
    prose = PROSE
    text = prose * (BIG_BYTES // len(prose) + 1)
    while True:
        message = {"role": "user", "content": text}
        body = json.dumps({"model": "m", "messages": [message]}, ensure_ascii=False).encode()
        if len(body) <= BIG_BYTES:
            return body
        text = text[: len(text) - (len(body) - BIG_BYTES) - 16]


WORDS = ["the", "a", "of", "and", "to", "in", "on", "with", "for", "at", "by", "from", "over",
    "under", "near", "after", "before", "while", "park", "river", "garden", "weather",
    "morning", "evening", "summer", "winter", "autumn", "spring", "rain", "snow", "wind",
    "cloud", "sun", "light", "tree", "flower", "grass", "hill", "valley", "road", "bridge",
    "village", "town", "market", "bakery", "bread", "coffee", "tea", "soup", "apple", "orange",
    "lemon", "cake", "music", "song", "guitar", "piano", "painting", "book", "story", "poem",
    "chapter", "football", "tennis", "match", "team", "game", "player", "goal", "coach",
    "stadium", "crowd", "cheer", "walk", "run", "swim", "bike", "train", "bus", "boat", "ship",
    "harbour", "beach", "sea", "wave", "sand", "shell", "bird", "fish", "cat", "dog", "horse",
    "cow", "sheep", "quiet", "loud", "bright", "dark", "warm", "cold", "green", "blue",
    "yellow", "red", "old", "new", "small", "large", "early", "late", "happy", "calm", "busy",
    "slow", "fast", "long", "short", "children", "friends", "neighbours", "visitors",
    "students"]  # fmt: skip


def read_body() -> bytes:
    """One chat request of ~6 MB whose text the model reads in full (see the module doc):
    bland words in random order."""
    pick = random.Random(0)
    text = " ".join(pick.choice(WORDS) for _ in range(40_000))[:200_000]
    message = {"role": "user", "content": text}
    body = json.dumps({"model": "m", "messages": [message]}).encode()
    message["content"] = text + "\n" * ((BIG_BYTES - len(body)) // 2)  # 2 bytes each in JSON
    return json.dumps({"model": "m", "messages": [message]}).encode()


BIG = {"prose": big_body, "read": read_body}


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, str]:
    """The answer's status and X-Sensitivity."""
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    return answer.status, answer.getheader("x-sensitivity", "")


def small_latencies(port: int, bodies: list[bytes], count: int) -> tuple[list[float], int, int]:
    """Latency (ms) of `count` small requests one after another; how many were not 200, and
    how many were classified confidential (the same prompts in the same order each time:
    more than alone means some failed closed, the model too late for them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, refused, closed = [], 0, 0
    for i in range(count):
        start = time.perf_counter()
        status, sensitivity = post(conn, bodies[i % len(bodies)])
        latencies.append((time.perf_counter() - start) * 1000)
        refused += status != 200
        closed += sensitivity == "confidential"
    conn.close()
    return latencies, refused, closed


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def big_prompt_rss_mb(server: common.Server, big: bytes) -> tuple[float, int]:
    """Peak RSS added while the router answers one 6 MB prompt (MB), and its status."""
    pid = server.proc.pid
    time.sleep(0.5)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    idle = rss_kb(pid, "VmRSS")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    status, _ = post(conn, big)
    conn.close()
    busy = common.cpu_seconds(pid)
    while True:  # work may go on after the answer (a model run past its timeout)
        time.sleep(1.0)
        now = common.cpu_seconds(pid)
        if now - busy < 0.05:
            break
        busy = now
    return (rss_kb(pid, "VmHWM") - idle) / 1024, status


class Stalling(socketserver.StreamRequestHandler):
    """Answers health checks; reads a POST and never answers it."""

    def handle(self) -> None:
        while line := self.rfile.readline():
            if line.startswith(b"GET"):
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            elif line.startswith(b"POST"):
                time.sleep(600)


def stall_seconds(work: Path, first_byte_s: float) -> dict:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = {"timeouts": {"upstream_first_byte_s": first_byte_s}, "limits": {"deadline_s": 120}}
    router = procs.router(url, work, config=config)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=200)
        start = time.perf_counter()
        status, _ = post(conn, common.chat_bodies(["hello"])[0])
        elapsed = time.perf_counter() - start
    finally:
        router.stop()
        server.shutdown()
    row = {
        "stall_first_byte_s": first_byte_s,
        "status": status,
        "answered_after_s": round(elapsed, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def loaded_row(name: str, kind: str, server: common.Server, small: list[bytes], big: bytes,
               n: int, alone: tuple[list[float], int, int]) -> dict:  # fmt: skip
    """Small requests' latency while prompts of `kind` arrive back to back, beside `alone`."""
    stop = threading.Event()
    big_sent: list[int] = []

    def send_big() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        while not stop.is_set():
            big_sent.append(post(conn, big)[0])
        conn.close()

    sender = threading.Thread(target=send_big)
    sender.start()
    time.sleep(0.2)  # the first big prompt is in
    loaded, refused, closed = small_latencies(server.port, small, n)
    stop.set()
    sender.join()
    row = {
        "variant": name,
        "big": kind,
        "p50_ms": statistics.median(alone[0]),
        "p99_ms": percentile(alone[0], 0.99),
        "loaded_p50_ms": statistics.median(loaded),
        "loaded_p99_ms": percentile(loaded, 0.99),
        "refused_alone": alone[1],
        "refused_loaded": refused,
        "failed_closed": closed - alone[2],
        "big_prompts_during": len(big_sent),
        "big_statuses": sorted(set(big_sent)),
    }
    row["p99_ratio"] = round(row["loaded_p99_ms"] / row["p99_ms"], 2)
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="0: only --stall")
    p.add_argument("--small", type=int, default=300, help="small requests per measurement")
    p.add_argument("--big", default="prose,read", help="kinds of 6 MB prompt (module doc)")
    p.add_argument("--model", type=Path, help="a build's model.int8.onnx (default: MiniLM-L6)")
    p.add_argument("--out", type=Path, help="write the rows and medians here (JSON)")
    p.add_argument("--stall", type=float, help="also measure a stalled upstream's 504 (s)")
    common.ab_args(p)
    args = p.parse_args()
    small = common.chat_bodies(common.eval_texts("public")[:200])
    bigs = {kind: BIG[kind]() for kind in args.big.split(",")}
    result: dict = {"loadavg_before": common.loadavg(), "rows": []}
    servers: dict[str, common.Server] = {}
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as tmp:
        work = Path(tmp)
        if args.stall:
            result["stall"] = stall_seconds(work, args.stall)
        if args.rounds == 0:
            print(json.dumps(result))
            return 0
        if args.model is None:
            from router.testing.model import make_minilm_classifier

            args.model = make_minilm_classifier(work / "model")
        model = {"model": {"path": str(args.model.resolve()), "timeout_ms": 2000}}
        upstream = procs.upstream(0.0)
        trees: dict[str, Path | None] = {"router": None}
        if args.rev:
            name = "router" + common.rev_name(args.rev, args.rev_paths)
            trees[name] = common.checkout(args.rev, args.rev_paths, work)
        try:
            config = {"classifier": model}
            for kind, big in bigs.items():  # a router of its own per kind: its first prompt
                for name, tree in trees.items():
                    server = procs.router(upstream.url, work, tree=tree, config=config)
                    try:
                        small_latencies(server.port, small, 50)  # warm: the model's first runs
                        added, status = big_prompt_rss_mb(server, big)
                    finally:
                        server.stop()
                    result[f"{name}_{kind}_rss_added_mb"] = round(added, 1)
                    row = {"variant": name, "big": kind, "rss_added_mb": round(added, 1)}
                    print(json.dumps(row | {"status": status}), flush=True)
            for name, tree in trees.items():
                servers[name] = procs.router(upstream.url, work, tree=tree, config=config)
                small_latencies(servers[name].port, small, 50)
            for _ in range(args.rounds):
                for name, server in servers.items():
                    alone = small_latencies(server.port, small, args.small)
                    for kind, big in bigs.items():
                        row = loaded_row(name, kind, server, small, big, args.small, alone)
                        result["rows"].append(row)
        finally:
            for server in [*servers.values(), upstream]:
                server.stop()
    keys = ("p50_ms", "p99_ms", "loaded_p50_ms", "loaded_p99_ms", "p99_ratio")
    result["medians"] = {
        f"{name} {kind}": {k: statistics.median(r[k] for r in result["rows"]
                                                if (r["variant"], r["big"]) == (name, kind))
                           for k in keys}
        for name in servers for kind in bigs
    }  # fmt: skip
    print(json.dumps(result["medians"], indent=2))
    common.finish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
