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

`--rev REV [--rev-paths P ...]` is the way to A/B the whole router against another revision:
variant `router@REV` (and `NAME@REV` per model config) runs REV's checkout beside the working
tree's, interleaved, e.g. `--rev main --variants direct,router --concurrency 16 --latency 0`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router import load, procs
from benchmarks.router.policy import synthetic_policy

HERE = Path(__file__).resolve().parent
DIST_MODEL = common.ROOT / "dist/sensitivity-minilm-cpu/onnx/model.int8.onnx"


def cells(rows: list[dict], run: dict[tuple, Callable[[], dict]], rounds: int, **fields) -> None:
    """Run the cells ({(c, variant): run}) round-robin; append one row per run to `rows`,
    printed as it comes (a long run shows its progress)."""
    done: dict[tuple, int] = {}

    def logged(key: tuple) -> None:
        done[key] = done.get(key, -1) + 1
        rows.append({**fields, "c": key[0], "variant": key[1], "round": done[key], **run[key]()})
        print(json.dumps(rows[-1]), flush=True)

    common.round_robin({key: partial(logged, key) for key in run}, rounds)


def proxy_comparison(args, work: Path) -> list[dict]:
    rows: list[dict] = []
    bodies = common.chat_bodies(common.eval_texts())
    for latency in args.latency:
        up = procs.upstream(latency)
        servers: dict = {"direct": None}
        try:
            servers["router"] = procs.router(up.url, work)
            if args.rev:  # the same router from another revision
                tree = common.checkout(args.rev, args.rev_paths, work)
                servers["router" + common.rev_name(args.rev, args.rev_paths)] = procs.router(
                    up.url, work, tree=tree
                )
            if "router-policy" in args.variants:  # classifier.sensitivity: 10k terms, ...
                policy = {"classifier": {"sensitivity": synthetic_policy()}}
                servers["router-policy"] = procs.router(up.url, work, config=policy)
            if "router-w2" in args.variants:  # listen.workers 2 (router/workers.py)
                servers["router-w2"] = procs.router(up.url, work, workers=2)
            if args.router_python:  # the same router under another interpreter build
                servers["router-alt"] = procs.router(up.url, work, python=args.router_python)
            if "nginx" in args.variants:
                servers["nginx"] = procs.nginx(up.url, work)
            if "litellm" in args.variants:
                servers["litellm"] = procs.litellm(up.url, work)
            servers = {k: v for k, v in servers.items() if k == "direct" or v is not None}
            urls = {
                k: (v.url if v else up.url) + "/v1/chat/completions" for k, v in servers.items()
            }
            auth = {"Authorization": f"Bearer {procs.LITELLM_KEY}"}
            scripts = {
                k: load.lua_script(bodies, auth if k == "litellm" else {}, work) for k in servers
            }
            for name in servers:  # warm-up
                load.run_wrk(urls[name], scripts[name], 16, 1)
            run = {
                (c, name): partial(load.cell, server, urls[name], scripts[name], c, args.seconds)
                for c in args.concurrency
                for name, server in servers.items()
            }
            cells(rows, run, args.rounds, latency_ms=latency * 1000)
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
    tree: Path | None = None,
    python: str | None = None,
) -> common.Server:
    """A router with the model; detectors off (every request reaches the model) or on.
    `tree`: another revision's checkout (--rev); `python`: the interpreter (--router-python;
    this one if None). It may use both cores, also after pin(): the model runs need them."""
    workers, threads, max_batch, *rest = knobs
    solo = rest[0] if rest else threads  # solo ≤ threads: no second session
    model_cfg = {"path": str(model), "max_batch": max_batch, "max_wait_ms": 2,
                 "timeout_ms": 2000, "threads": threads, "workers": workers,
                 "solo_threads": solo}  # fmt: skip
    if "cache_entries" in ((tree or common.ROOT) / "router/config.py").read_text():
        # no score cache: wrk sends the eval prompts again every pass, which would measure
        # the cache, not the model (history.py measures it on text that does not repeat)
        model_cfg["cache_entries"] = 0
    classifier = {"model": model_cfg} | ({} if detectors else {"detectors": []})
    return procs.router(
        upstream_url, work, tree=tree, config={"classifier": classifier}, python=python,
        cpus=common.ALL_CPUS, name="router+model",
    )  # fmt: skip


def model_run(args, work: Path, model: Path) -> list[dict]:
    """Every cell: classified req/s, p50/p99, router CPU per request; /v1/classify cells
    also the per-request classification time (classifier_ms) and the model's share.
    `all`: detectors off, every eval prompt reaches the model;
    `eval`: detectors on over the whole eval split, as deployed (the model runs only
    where no detector decided)."""
    up = procs.upstream(0.0)
    texts = common.eval_texts()
    routers: dict[tuple[str, str], common.Server] = {}
    rows: list[dict] = []
    try:
        # each config under this tree, then again under --rev's tree (NAME@REV) and
        # --router-python (NAME-alt)
        configs = [(c, c, None, None) for c in args.model_configs]
        if args.rev:
            tree = common.checkout(args.rev, args.rev_paths, work)
            suffix = common.rev_name(args.rev, args.rev_paths)
            configs += [(c + suffix, c, tree, None) for c in args.model_configs]
        if args.router_python:
            configs += [(c + "-alt", c, None, args.router_python) for c in args.model_configs]
        for name, cname, tree, python in configs:
            for mix in args.mixes:
                routers[(name, mix)] = model_router(
                    up.url, work, model, mix == "eval", MODEL_CONFIGS[cname], tree, python
                )
        chat = load.lua_script(common.chat_bodies(texts), {}, work)
        plain = load.lua_script([json.dumps({"text": t}).encode() for t in texts], {}, work)
        stats = work / "classify-stats.json"
        classify = work / "classify-stats.lua"
        classify.write_text(plain.read_text() + CLASSIFY_LUA.replace("OUT", str(stats)))
        for router in routers.values():  # warm-up
            load.run_wrk(router.url + "/v1/classify", plain, 16, 1)

        def classify_cell(router: common.Server, c: int) -> dict:
            stats.unlink(missing_ok=True)
            r = load.cell(router, router.url + "/v1/classify", classify, c, args.seconds)
            return r | (json.loads(stats.read_text()) if stats.is_file() else {})

        def chat_cell(router: common.Server, c: int) -> dict:
            return load.cell(router, router.url + "/v1/chat/completions", chat, c, args.seconds)

        run = {}
        for c in args.model_concurrency:
            for (name, mix), router in routers.items():
                for kind, fn in (("classify", classify_cell), ("chat", chat_cell)):
                    run[(c, f"{kind}/{mix}/{name}")] = partial(fn, router, c)
        cells(rows, run, args.rounds)
    finally:
        for router in routers.values():
            router.stop()
        up.stop()
    return rows


def summarise(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Medians over rounds per `keys`; for proxies, "added p50" = the median of the
    per-round differences to `direct` at the same latency and concurrency."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        s = dict(zip(keys, key, strict=True))
        s |= {m: v for m, v in common.medians(rs).items() if m in METRICS and v is not None}
        s["errors"] = sum(r["errors"] for r in rs)
        s["rounds"] = len(rs)
        if "latency_ms" in keys and s["variant"] != "direct":
            direct = {
                r["round"]: r["p50_ms"]
                for r in rows
                if r["variant"] == "direct"
                and r["latency_ms"] == s["latency_ms"]
                and r["c"] == s["c"]
            }
            diffs = [r["p50_ms"] - direct[r["round"]] for r in rs if r["round"] in direct]
            s["added_p50_ms"] = round(statistics.median(diffs), 3) if diffs else None
        out.append(s)
    return out


METRICS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "cls_p50_ms", "cls_p99_ms", "model_share")


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
    common.ab_args(p)  # adds variant router@REV, and NAME@REV for each model config
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
        common.pin()
    args.variants = args.variants.split(",")
    result: dict = {
        "loadavg_before": common.loadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
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
    for section in ("proxies", "model"):
        for row in result.get(section, []):
            print(json.dumps(row))
    common.finish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
