"""Drive load with wrk (C, one thread: it leaves the 2 cores to the servers) and parse its
report: requests, req/s, p50/p99 latency, non-2xx count, and the server's CPU per request.
Bodies cycle through the prompts."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import Server, medians, round_robin

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def lua_script(bodies: list[bytes], headers: dict[str, str], folder: Path) -> Path:
    items = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    head = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    text = f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{head}
local bodies = {{
{items}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""
    path = Path(tempfile.mkstemp(suffix=".lua", dir=folder)[1])
    path.write_text(text)
    return path


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * UNITS[unit]


def run_wrk(url: str, script: Path, concurrency: int, seconds: float) -> dict:
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout
    if " requests in " not in out:
        raise RuntimeError(f"wrk failed on {url}: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
    }
    for pct in ("50", "99"):
        result[f"p{pct}_ms"] = _ms(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(errors.group(1)) if errors else 0
    return result


def cell(server: Server | None, url: str, script: Path, c: int, seconds: float) -> dict:
    """One wrk run at concurrency `c`; with `server`, also its CPU µs per request."""
    before = server.cpu() if server else 0.0
    result = run_wrk(url, script, c, seconds)
    if server:
        result["cpu_us_per_req"] = (server.cpu() - before) / max(result["requests"], 1) * 1e6
    return result


def compare(
    running: dict[str, Server], script: Path, rounds: int, seconds: float, c: int = 16
) -> dict[str, dict]:
    """Warm each server up (1 s), then `rounds` of one wrk cell each on its chat endpoint,
    round-robin; medians of req/s, p50 and the server's CPU µs per request."""
    url = "/v1/chat/completions"
    for s in running.values():
        run_wrk(s.url + url, script, c, 1)
    cells = {n: (lambda s=s: cell(s, s.url + url, script, c, seconds)) for n, s in running.items()}
    keep = ("rps", "p50_ms", "cpu_us_per_req")
    return {
        n: {k: v for k, v in medians(rs, digits=2).items() if k in keep}
        for n, rs in round_robin(cells, rounds).items()
    }
