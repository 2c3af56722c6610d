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
    (LiteLLM from benchmarks/router/overload/.venv, see README.md; --only router skips it)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
MAIN_PY = ROOT / ".venv" / "bin" / "python"
LITELLM = HERE / ".venv" / "bin" / "litellm"
KEY = "sk-bench-overload"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_until(check, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up in {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its waited-for children (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


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
    import yaml

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
    for name in ("main-a", "main-b", "small"):
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
                 for n in ("main-a", "main-b", "small")]  # fmt: skip
        now = (sum(x["calls"] for x in stats), sum(x["busy"] for x in stats))
        if now != last or now[1]:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= for_s:
            return time.monotonic() - t0
        time.sleep(0.25)
    raise SystemExit("upstreams did not go quiet")


def reset(ports: dict[str, int]) -> None:
    for name in ("main-a", "main-b", "small"):
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
    cmd = [str(MAIN_PY), str(HERE / "loadgen.py"), "--url", url, "--rate", str(rate),
           "--seconds", str(seconds), "--deadline", str(deadline_s), "--out", str(out)]  # fmt: skip
    if key:
        cmd += ["--key", key]
    subprocess.run(cmd, check=True, timeout=seconds + deadline_s + 60)
    return [json.loads(line) for line in out.read_text().splitlines()]


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
    ports = {n: free_port() for n in ("main-a", "main-b", "small", "router", "litellm")}
    procs: list[subprocess.Popen] = []
    log = (tmp / "processes.log").open("wb")
    try:
        sv = a.service
        specs = [f"main-a:{ports['main-a']}:2:{sv}:0.2", f"main-b:{ports['main-b']}:2:{sv}:0.2",
                 f"small:{ports['small']}:1:{sv / 2}:0.2"]  # fmt: skip
        up = [str(MAIN_PY), str(HERE / "upstream.py")] + [x for s in specs for x in ("--spec", s)]
        procs.append(subprocess.Popen(up, stdout=log, stderr=log))
        wait_until(lambda: http(f"http://127.0.0.1:{ports['small']}/health")[0] == 200, 30,
                   "upstreams")  # fmt: skip
        urls, pids, keys = {}, {}, {}
        if "router" in variants:
            (tmp / "router.yaml").write_text(router_yaml(ports, a.deadline))
            code = "from pipeline.cli import main; main()"
            cmd = [str(MAIN_PY), "-c", code, "router", "--config", str(tmp / "router.yaml")]
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT)
            procs.append(proc)
            urls["router"], pids["router"], keys["router"] = (
                f"http://127.0.0.1:{ports['router']}", proc.pid, None)  # fmt: skip
            wait_until(lambda: http(urls["router"] + "/readyz")[0] == 200, 60, "router")
        if "litellm" in variants:
            (tmp / "litellm.yaml").write_text(litellm_yaml(ports, a.deadline))
            cmd = [str(LITELLM), "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1",
                   "--port", str(ports["litellm"]), "--num_workers", "1"]  # fmt: skip
            env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            procs.append(proc)
            urls["litellm"], pids["litellm"], keys["litellm"] = (
                f"http://127.0.0.1:{ports['litellm']}", proc.pid, KEY)  # fmt: skip
            wait_until(lambda: http(urls["litellm"] + "/health/liveliness")[0] == 200, 180,
                       "litellm proxy")  # fmt: skip
        for v in variants:  # warm-up: a few requests each, not counted
            run_load(urls[v], 5, 1, a.deadline, keys[v], tmp / f"warm-{v}.jsonl")
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        per_round: dict[str, list[dict]] = {v: [] for v in variants}
        for rnd in range(a.rounds):
            for v in variants:
                quiet(ports)
                reset(ports)
                cpu0 = cpu_seconds(pids[v])
                rows = run_load(urls[v], a.rate, a.seconds, a.deadline, keys[v],
                                tmp / f"{v}-{rnd}.jsonl")  # fmt: skip
                # calls and CPU count until the proxy stopped working on this run's
                # requests (a proxy may go on retrying what its client gave up on)
                waited = quiet(ports)
                s = summarise(rows, upstream_calls(ports), cpu_seconds(pids[v]) - cpu0)
                s["settle_s"] = waited
                per_round[v].append(s)
                print(f"round {rnd} {v}: " + json.dumps({k: _r(x) for k, x in s.items()}),
                      flush=True)  # fmt: skip
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        medians = {v: _median(rs) for v, rs in per_round.items()}
        result = {"config": vars(a), "loadavg_before": load_before, "loadavg_after": load_after,
                  "rounds": per_round, "median": medians}  # fmt: skip
        Path(a.out).write_text(json.dumps(result, indent=2))
        print(table(medians))
        print(f"loadavg before {load_before} after {load_after}; raw: {a.out}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _r(x):
    return round(x, 4) if isinstance(x, float) else x


def _median(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        vals = [r[key] for r in rows if r[key] is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


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
