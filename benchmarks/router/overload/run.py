"""Overload benchmark: edgepack's router vs the LiteLLM proxy on the same upstreams.

Scenario: two primary OpenAI-protocol upstreams with a real capacity (2 slots × 0.2 s each
= 20 req/s together), a small fallback model (1 slot × 0.1 s), 20% of every upstream's
calls failing with 503; offered load 2× the primary capacity (40 req/s, open loop),
tiers 20% high / 30% normal / 50% low, 5 s deadline per request. Each proxy uses its own
retries and fallbacks. Variants are interleaved round-robin (router, litellm, router, …),
upstream counters are reset before each run.

Figures per variant (median over rounds): goodput per tier (share answered 200), p99 of
successful latencies per tier, shed rate (429/503), hung (client gave up at deadline +
1 s), upstream calls per request (retry amplification), proxy CPU ms per request.

    .venv/bin/python benchmarks/router/overload/run.py --rounds 2 --seconds 15
    (LiteLLM from benchmarks/router/.venv: ../setup.sh; --only router skips it)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks import common
from benchmarks.common import Server

HERE = Path(__file__).resolve().parent
LITELLM = HERE.parent / ".venv" / "bin" / "litellm"  # setup.sh puts it there
KEY = "sk-bench-overload"
UPSTREAMS = ("main-a", "main-b", "small")


def http(url: str, method: str = "GET", timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    req.add_header("Authorization", f"Bearer {KEY}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def router_yaml(ports: dict[str, int], deadline_s: float) -> str:
    return f"""
listen: {{host: 127.0.0.1, port: {ports["router"]}}}
onprem:
  upstreams:
    - {{name: main-a, url: "http://127.0.0.1:{ports["main-a"]}"}}
    - {{name: main-b, url: "http://127.0.0.1:{ports["main-b"]}"}}
  health: {{interval_s: 1, timeout_s: 0.5, eject_on_failure: false}}
fallback:
  public:
    upstreams: [{{name: small, url: "http://127.0.0.1:{ports["small"]}"}}]
    health: {{interval_s: 1, timeout_s: 0.5, eject_on_failure: false}}
admission:
  pool_limits: {{onprem: 4, fallback-public: 1}}   # = the upstreams' slots
limits: {{deadline_s: {deadline_s}}}
logging: {{level: warning}}
"""


def litellm_yaml(ports: dict[str, int], deadline_s: float) -> str:
    def deployment(name: str, server: str) -> dict:
        base = f"http://127.0.0.1:{ports[server]}/v1"
        params = {"model": f"openai/{name}", "api_base": base, "api_key": "x"}
        return {"model_name": name, "litellm_params": params}

    fallbacks = [{"main": ["small"]}]
    return yaml.safe_dump({
        "model_list": [deployment("main", "main-a"), deployment("main", "main-b"),
                       deployment("small", "small")],
        "router_settings": {"routing_strategy": "least-busy", "num_retries": 2,
                            "timeout": deadline_s, "fallbacks": fallbacks},
        "litellm_settings": {"num_retries": 2, "request_timeout": deadline_s,
                             "fallbacks": fallbacks},
        "general_settings": {"master_key": KEY},
    })  # fmt: skip


def upstream_calls(ports: dict[str, int]) -> int:
    total = 0
    for name in UPSTREAMS:
        _, body = http(f"http://127.0.0.1:{ports[name]}/stats")
        total += json.loads(body)["calls"]
    return total


def quiet(ports: dict[str, int], for_s: float = 3.0, timeout: float = 240.0) -> float:
    """Wait until no upstream has work and no new call arrived for `for_s` seconds (a proxy
    may go on retrying requests its client gave up on); returns the seconds waited."""
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < timeout:
        stats = [json.loads(http(f"http://127.0.0.1:{ports[n]}/stats")[1])
                 for n in UPSTREAMS]  # fmt: skip
        now = (sum(x["calls"] for x in stats), sum(x["busy"] for x in stats))
        if now != last or now[1]:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= for_s:
            return time.monotonic() - t0
        time.sleep(0.25)
    raise SystemExit("upstreams did not go quiet")


def reset(ports: dict[str, int]) -> None:
    for name in UPSTREAMS:
        http(f"http://127.0.0.1:{ports[name]}/reset", "POST")


def p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)]


def summarise(rows: list[dict], calls: int, cpu_s: float) -> dict:
    out: dict = {"requests": len(rows), "upstream_calls_per_request": calls / len(rows),
                 "cpu_ms_per_request": 1000 * cpu_s / len(rows)}  # fmt: skip
    ok = sum(r["status"] == 200 for r in rows)
    out["upstream_calls_per_success"] = calls / ok if ok else None
    shed = sum(r["status"] in (429, 503) for r in rows)
    out["shed_rate"] = shed / len(rows)
    out["hung"] = sum(r["status"] == -1 for r in rows)
    out["refusals_without_retry_after"] = sum(
        r["status"] in (429, 503) and not r["retry_after"] for r in rows
    )
    for tier in ("high", "normal", "low"):
        mine = [r for r in rows if r["tier"] == tier]
        ok = [r["s"] for r in mine if r["status"] == 200]
        out[f"{tier}_goodput"] = len(ok) / len(mine) if mine else None
        out[f"{tier}_p50_s"] = p(ok, 0.50)
        out[f"{tier}_p99_s"] = p(ok, 0.99)
    return out


def run_load(url: str, rate: float, seconds: float, deadline_s: float, key: str | None,
             out: Path) -> list[dict]:  # fmt: skip
    cmd = [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--rate", str(rate),
           "--seconds", str(seconds), "--deadline", str(deadline_s), "--out", str(out)]  # fmt: skip
    if key:
        cmd += ["--key", key]
    subprocess.run(cmd, check=True, timeout=seconds + deadline_s + 60)
    return [json.loads(line) for line in out.read_text().splitlines()]


def start(variant: str, ports: dict[str, int], deadline_s: float, tmp: Path) -> Server:
    """The proxy under test in its own process, ready."""
    config = tmp / f"{variant}.yaml"
    port = ports[variant]
    if variant == "router":
        config.write_text(router_yaml(ports, deadline_s))
        main = "from pipeline.cli import main; main()"
        argv = [sys.executable, "-c", main, "router", "--config", str(config)]
        return Server("router", argv, port, "/readyz").wait(60)
    config.write_text(litellm_yaml(ports, deadline_s))
    argv = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1"]  # fmt: skip
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    return Server("litellm", argv, port, "/health/liveliness", env=env).wait(180)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rate", type=float, default=40)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--service", type=float, default=0.2,
                    help="primary upstream service time; capacity = 4 slots / service")  # fmt: skip
    ap.add_argument("--only", choices=["router", "litellm"])
    ap.add_argument("--out", default=str(HERE / "results.json"))
    a = ap.parse_args()
    variants = [a.only] if a.only else ["router", "litellm"]
    if "litellm" in variants and not LITELLM.exists():
        raise SystemExit(f"{LITELLM} missing: see README.md (or pass --only router)")

    tmp = Path(tempfile.mkdtemp(prefix="edgepack-overload-"))
    ports = {n: common.free_port() for n in (*UPSTREAMS, "router", "litellm")}
    running: list[Server] = []
    try:
        sv = a.service
        specs = [f"main-a:{ports['main-a']}:2:{sv}:0.2", f"main-b:{ports['main-b']}:2:{sv}:0.2",
                 f"small:{ports['small']}:1:{sv / 2}:0.2"]  # fmt: skip
        up = [sys.executable, str(HERE / "upstream.py")] + [x for s in specs for x in ("--spec", s)]
        running.append(Server("upstreams", up, ports["small"], "/health").wait(30))
        proxies = {}
        for v in variants:
            proxies[v] = start(v, ports, a.deadline, tmp)
            running.append(proxies[v])
        keys = {"router": None, "litellm": KEY}
        for v in variants:  # warm-up: a few requests each, not counted
            run_load(proxies[v].url, 5, 1, a.deadline, keys[v], tmp / f"warm-{v}.jsonl")
        load_before = common.loadavg()
        done: dict[str, int] = {}

        def one(v: str) -> dict:
            rnd = done[v] = done.get(v, -1) + 1
            quiet(ports)
            reset(ports)
            cpu0 = proxies[v].cpu()
            rows = run_load(proxies[v].url, a.rate, a.seconds, a.deadline, keys[v],
                            tmp / f"{v}-{rnd}.jsonl")  # fmt: skip
            # calls and CPU count until the proxy stopped working on this run's
            # requests (a proxy may go on retrying what its client gave up on)
            waited = quiet(ports)
            s = summarise(rows, upstream_calls(ports), proxies[v].cpu() - cpu0)
            s["settle_s"] = waited
            print(f"round {rnd} {v}: " + json.dumps({k: _r(x) for k, x in s.items()}),
                  flush=True)  # fmt: skip
            return s

        per_round = common.round_robin({v: partial(one, v) for v in variants}, a.rounds)
        load_after = common.loadavg()
        medians = {v: common.medians(rs, digits=4) for v, rs in per_round.items()}
        result = {"config": vars(a), "loadavg_before": load_before, "loadavg_after": load_after,
                  "rounds": per_round, "median": medians}  # fmt: skip
        Path(a.out).write_text(json.dumps(result, indent=2))
        print(table(medians))
        print(f"loadavg before {load_before} after {load_after}; raw: {a.out}")
    finally:
        for server in reversed(running):
            server.stop()


def _r(x):
    return round(x, 4) if isinstance(x, float) else x


def table(medians: dict[str, dict]) -> str:
    keys = ["high_goodput", "normal_goodput", "low_goodput", "high_p99_s", "normal_p99_s",
            "low_p99_s", "shed_rate", "hung", "refusals_without_retry_after",
            "upstream_calls_per_request", "upstream_calls_per_success",
            "cpu_ms_per_request"]  # fmt: skip
    names = list(medians)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        vals = [medians[n].get(k) for n in names]
        lines.append(f"| {k} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals)
                     + " |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
