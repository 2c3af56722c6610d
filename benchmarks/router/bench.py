"""Router benchmark: direct vs router vs nginx vs LiteLLM, interleaved, loopback only.

    bash benchmarks/router/setup.sh            # nginx + wrk (Debian), LiteLLM in .venv here
    .venv/bin/python benchmarks/router/bench.py --rounds 3 --seconds 3

For each upstream latency (0 and 20 ms) it starts one upstream and every proxy in front of
it, then runs wrk round-robin over variants and concurrencies (A B C D A B C D ...), each
cell for a bounded time. Per cell: req/s, p50/p99, and the proxy process tree's CPU seconds
per request (from /proc). Reported: medians over rounds; "added p50" is the median of the
per-round differences to `direct`. With --model, the model run (`model_run`) compares router
model settings (--model-configs), each with detectors off (every request reaches the model)
and on (as deployed), over /v1/classify and chat; prompts are the default recipe's eval split:

    .venv/bin/python benchmarks/router/bench.py --skip-proxies --model PATH --rounds 3
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
        if "router-w2" in args.variants:  # listen.workers 2 (router/workers.py)
            servers["router-w2"] = procs.router(up.url, work, workers=2)
        if args.router_python:  # the same router under another interpreter build
            servers["router-alt"] = procs.router(up.url, work, python=args.router_python)
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


# Per-request classification time and who decided, read from /v1/classify answers inside
# wrk (one thread: `ms` is that thread's global, copied out in done()) into a JSON file.
CLASSIFY_LUA = """
ms, by_model = {}, 0
response = function(status, headers, body)
  local v = body:match('"classifier_ms":%s*([%d%.eE+-]+)')
  if v then ms[#ms + 1] = tonumber(v) end
  if body:find('"reasons":%s*%[%s*%]') or body:find('"reasons":%s*%[%s*"model"%s*%]') then
    by_model = by_model + 1
  end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local all, n_model = {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("ms")) do all[#all + 1] = v end
    n_model = n_model + t:get("by_model")
  end
  table.sort(all)
  local f = io.open("OUT", "w")
  if #all > 0 then
    f:write(string.format('{"n": %d, "cls_p50_ms": %.3f, "cls_p99_ms": %.3f, "model_share": %.3f}',
      #all, all[math.ceil(#all * 0.5)], all[math.ceil(#all * 0.99)], n_model / #all))
  else
    f:write("{}")
  end
  f:close()
end
"""

# Router model settings compared by --model-configs: (workers, threads, max_batch[, solo])
# w1t1b32: one run at a time as before the change, 1 thread, batches of 32
MODEL_CONFIGS = {
    "w1t1b32": (1, 1, 32),
    "w1t2b32": (1, 2, 32),
    "w2t1b8": (2, 1, 8),
    "w2t2b8": (2, 2, 8),
    "w2t1b16": (2, 1, 16),
    "w2t1b8s2": (2, 1, 8, 2),  # a run with none beside it on a 2-thread session
}


def model_router(
    upstream_url: str,
    work: Path,
    model: Path,
    detectors: bool,
    knobs: tuple,
    code: Path | None,
    python: str | None = None,
):
    """A router with the model; detectors off (every request reaches the model) or on.
    `code`: run an older checkout's router/ (--baseline; it knows no `workers` key);
    `python`: the interpreter (--router-python; this one if None)."""
    port = procs.free_port()
    workers, threads, max_batch, *rest = knobs
    solo = rest[0] if rest else threads  # solo ≤ threads: no second session
    model_cfg = {"path": str(model), "max_batch": max_batch, "max_wait_ms": 2,
                 "timeout_ms": 2000, "threads": threads}  # fmt: skip
    if code is None:
        model_cfg["workers"] = workers
        model_cfg["solo_threads"] = solo
    cfg = {
        "listen": {"host": "127.0.0.1", "port": port},
        "onprem": {"upstreams": [{"name": "bench", "url": upstream_url}]},
        "admission": {"per_upstream_limit": 256},
        "limits": {"deadline_s": 30},
        "classifier": {"model": model_cfg} | ({} if detectors else {"detectors": []}),
    }
    path = work / f"router-{port}.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    boot = f"import sys; sys.path.insert(0, {str(code)!r}); " if code else ""
    main = boot + "from pipeline.cli import main; main()"
    argv = [python or sys.executable, "-c", main, "router", "--config", str(path)]
    return procs.Server(  # both cores, also after pin(): the model runs need them
        "router+model", argv, port, "/readyz", cpus=procs.ALL_CPUS
    ).wait()


def model_run(args, work: Path, model: Path) -> list[dict]:
    """Every cell: classified req/s, p50/p99, router CPU per request; /v1/classify cells
    also the per-request classification time (classifier_ms) and the model's share.
    `all`: detectors off, every eval prompt reaches the model;
    `eval`: detectors on over the whole eval split, as deployed (the model runs only
    where no detector decided)."""
    up = procs.upstream(0.0)
    prompts = {"all": texts(), "eval": texts()}
    routers = {}
    rows = []
    try:
        configs = [(cname, None) for cname in args.model_configs]
        if args.router_python:  # each config again under the other interpreter: NAME-alt
            configs += [(c, args.router_python) for c in args.model_configs if c != "before"]
        for cname, python in configs:
            for mix in args.mixes:
                code = args.baseline if cname == "before" else None
                knobs = (1, 1, 32) if cname == "before" else MODEL_CONFIGS[cname]
                name = cname + ("-alt" if python else "")
                routers[(name, mix)] = model_router(
                    up.url, work, model, mix == "eval", knobs, code, python
                )
        scripts = {}
        for mix, ps in prompts.items():
            chat = load.lua_script(load.chat_bodies(ps), {}, work)
            bodies = [json.dumps({"text": t}).encode() for t in ps]
            classify = load.lua_script(bodies, {}, work)
            scripts[mix] = {"classify": classify, "chat": chat}
        for (_, mix), router in routers.items():  # warm-up
            load.run_wrk(router.url + "/v1/classify", scripts[mix]["classify"], 16, 1)
        for rnd in range(args.rounds):
            for c in args.model_concurrency:
                for (cname, mix), router in routers.items():
                    for kind, path in (
                        ("classify", "/v1/classify"),
                        ("chat", "/v1/chat/completions"),
                    ):
                        script = scripts[mix][kind]
                        stats = work / "classify-stats.json"
                        if kind == "classify":
                            lua = CLASSIFY_LUA.replace("OUT", str(stats))
                            script = work / f"classify-{mix}-stats.lua"
                            script.write_text(scripts[mix][kind].read_text() + lua)
                            stats.unlink(missing_ok=True)
                        r = measure(router, router.url + path, script, c, args.seconds)
                        if kind == "classify" and stats.is_file():
                            r |= json.loads(stats.read_text())
                        variant = f"{kind}/{mix}/{cname}"
                        rows.append({"variant": variant, "c": c, "round": rnd, **r})
                        print(json.dumps(rows[-1]), flush=True)
    finally:
        for router in routers.values():
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
        for m in (
            "rps",
            "p50_ms",
            "p99_ms",
            "cpu_us_per_req",
            "cls_p50_ms",
            "cls_p99_ms",
            "model_share",
        ):
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
    p.add_argument("--variants", default="direct,router,router-w2,nginx,litellm")
    p.add_argument("--model", default="auto", help="INT8 model for the model run; 'none' skips")
    p.add_argument("--skip-proxies", action="store_true", help="only the model run")
    p.add_argument(
        "--pin", action="store_true",
        help="each proxy on a core of its own, wrk and the upstream on the other (not the "
        "model run, which needs both)",
    )  # fmt: skip
    p.add_argument(
        "--model-configs",
        type=lambda s: s.split(","),
        default=list(MODEL_CONFIGS),
        help=f"router model settings to compare: {MODEL_CONFIGS} (workers, threads, max_batch)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="an older checkout (git archive REV router pipeline | tar -x -C DIR): adds "
        "model config `before`, its router with max_batch 32, 1 thread",
    )
    p.add_argument(
        "--router-python",
        help="another interpreter (a venv's bin/python with the router's packages): adds "
        "variant router-alt, the same router run by it, and NAME-alt for each model config",
    )
    p.add_argument("--mixes", type=lambda s: s.split(","), default=["all", "eval"])
    p.add_argument(
        "--model-concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    args = p.parse_args()
    if args.pin:
        procs.pin()
    args.variants = args.variants.split(",")
    if args.baseline:
        args.model_configs = ["before", *args.model_configs]
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
