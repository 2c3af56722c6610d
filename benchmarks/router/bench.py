"""Router benchmark: direct vs router vs nginx vs LiteLLM, interleaved, loopback only.

    bash benchmarks/router/setup.sh            # nginx + wrk (Debian), LiteLLM in .venv here
    .venv/bin/python benchmarks/router/bench.py --rounds 3 --seconds 3

For each upstream latency (0 and 20 ms) it starts one upstream and every proxy in front of
it, then runs wrk round-robin over variants and concurrencies (A B C D A B C D ...), each
cell for a bounded time. Per cell: req/s, p50/p99, and the proxy process tree's CPU seconds
per request (from /proc). Reported: medians over rounds; "added p50" is the median of the
per-round differences to `direct`. With --model, the router also runs the INT8 classifier on
every request (no detector may decide first) and /v1/classify is measured on its own.
Prompts are the default recipe's eval split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import load  # noqa: E402
import procs  # noqa: E402

EVAL = HERE.parents[1] / "recipes/data/sensitivity/eval.jsonl"
DIST_MODEL = HERE.parents[1] / "dist/sensitivity-minilm-cpu/onnx/model.int8.onnx"


def texts(label: str | None = None) -> list[str]:
    rows = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows if label is None or r["label"] == label]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def measure(server, url: str, script: Path, c: int, seconds: float) -> dict:
    before = server.cpu() if server else 0.0
    result = load.run_wrk(url, script, c, seconds)
    if server:
        result["cpu_us_per_req"] = (server.cpu() - before) / max(result["requests"], 1) * 1e6
    return result


def proxy_comparison(args, work: Path) -> list[dict]:
    rows = []
    bodies = load.chat_bodies(texts())
    for latency in args.latency:
        up = procs.upstream(latency)
        servers = {"direct": None, "router": procs.router(up.url, work)}
        if "nginx" in args.variants:
            servers["nginx"] = procs.nginx(up.url, work)
        if "litellm" in args.variants:
            servers["litellm"] = procs.litellm(up.url, work)
        servers = {k: v for k, v in servers.items() if k == "direct" or v is not None}
        urls = {k: (v.url if v else up.url) + "/v1/chat/completions" for k, v in servers.items()}
        scripts = {
            k: load.lua_script(
                bodies,
                {"Authorization": f"Bearer {procs.LITELLM_KEY}"} if k == "litellm" else {},
                work,
            )
            for k in servers
        }
        try:
            for name in servers:  # warm-up
                load.run_wrk(urls[name], scripts[name], 16, 1)
            for rnd in range(args.rounds):
                for c in args.concurrency:
                    for name, server in servers.items():
                        r = measure(server, urls[name], scripts[name], c, args.seconds)
                        rows.append(
                            {
                                "latency_ms": latency * 1000,
                                "c": c,
                                "variant": name,
                                "round": rnd,
                                **r,
                            }
                        )
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            for server in [*servers.values(), up]:
                if server:
                    server.stop()
    return rows


def model_run(args, work: Path, model: Path) -> list[dict]:
    up = procs.upstream(0.0)
    router = procs.router(up.url, work, model=model)
    public = texts()
    chat = load.lua_script(load.chat_bodies(public), {}, work)
    classify = load.lua_script([json.dumps({"text": t}).encode() for t in public], {}, work)
    rows = []
    try:
        load.run_wrk(router.url + "/v1/classify", classify, 16, 2)  # warm-up
        for rnd in range(args.rounds):
            for c in (16, 64):
                for name, path, script in (
                    ("classify", "/v1/classify", classify),
                    ("router+model", "/v1/chat/completions", chat),
                ):
                    r = measure(router, router.url + path, script, c, args.seconds)
                    rows.append({"variant": name, "c": c, "round": rnd, **r})
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        router.stop()
        up.stop()
    return rows


def summarise(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        s = dict(zip(keys, key, strict=True))
        for m in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
            vals = [r[m] for r in rs if m in r]
            if vals:
                s[m] = round(statistics.median(vals), 3)
        s["errors"] = sum(r["errors"] for r in rs)
        s["rounds"] = len(rs)
        if "latency_ms" in keys and s["variant"] != "direct":
            direct = {
                (r["round"]): r["p50_ms"]
                for r in rows
                if r["variant"] == "direct"
                and r["latency_ms"] == s["latency_ms"]
                and r["c"] == s["c"]
            }
            diffs = [r["p50_ms"] - direct[r["round"]] for r in rs if r["round"] in direct]
            s["added_p50_ms"] = round(statistics.median(diffs), 3) if diffs else None
        out.append(s)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="router benchmark (loopback)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    p.add_argument(
        "--latency", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 0.02]
    )
    p.add_argument("--variants", default="direct,router,nginx,litellm")
    p.add_argument("--model", default="auto", help="INT8 model for the model run; 'none' skips")
    p.add_argument("--skip-proxies", action="store_true", help="only the model run")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    args = p.parse_args()
    args.variants = args.variants.split(",")
    result: dict = {"loadavg_before": loadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp:
        work = Path(tmp)
        if not args.skip_proxies:
            rows = proxy_comparison(args, work)
            result["proxies"] = summarise(rows, ("latency_ms", "c", "variant"))
            args.out.write_text(json.dumps(result, indent=2))  # keep it if the model run fails
        model = (DIST_MODEL if args.model == "auto" else Path(args.model)).resolve()
        if args.model != "none" and model.is_file():
            result["model"] = summarise(model_run(args, work, model), ("variant", "c"))
            result["model_path"] = str(model)
    result["loadavg_after"] = loadavg()
    args.out.write_text(json.dumps(result, indent=2))
    for section in ("proxies", "model"):
        for row in result.get(section, []):
            print(json.dumps(row))
    print(f"loadavg before {result['loadavg_before']} after {result['loadavg_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
