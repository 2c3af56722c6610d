"""Where a huge body's memory and CPU go: 6 MB request bodies of many shapes, each read by
the router's ingress and classified by its classifier (rules, then the model), in a fresh
process per body, A/B-able.

    .venv/bin/python benchmarks/router/huge_bodies.py [--rev REV] [--rounds 1] \
        [--model M.onnx | --model none] [--shapes prose,cjk,...]

Per shape and variant (this tree, and REV's with --rev, interleaved), a child process
loads the classifier (MiniLM-L6 of the build's shape unless --model names one; `none`:
rules only), warms it, resets its peak RSS (/proc/self/clear_refs) and reads one body:
the peak RSS it added (MB) and the CPU seconds of ingress (parse) and of the whole
(ingress + classification), and the decision. Shapes: see BODIES (prose no detector fires
on; CJK; accented Latin; emoji; dotted digit groups; a base64 blob; percent-encoded text
(one run without spaces); JSON \\u escapes; 150,000 small messages; 300,000 metadata
keys; ~35k tokens of words padded to 6 MB with newlines, which the model reads in full).
A child that takes longer than `--limit` seconds is stopped and its row says so. Goal:
< 50 MB added per 6 MB prompt (README.md, "Bounds").
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from benchmarks.router.bounds import BIG_BYTES, PROSE, read_body


def _chat(text: str | None = None, messages: list | None = None, **extra) -> bytes:
    messages = messages if messages is not None else [{"role": "user", "content": text}]
    return json.dumps({"model": "m", "messages": messages, **extra}, ensure_ascii=False).encode()


def _fit(make) -> bytes:
    """make(k) for the largest k whose body is at most BIG_BYTES."""
    lo, hi = 1, BIG_BYTES
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(make(mid)) <= BIG_BYTES else (lo, mid - 1)
    return make(lo)


def _repeat(unit: str):
    return lambda k: _chat((unit * (k // len(unit) + 1))[:k])


BODIES = {
    "prose": lambda: _fit(_repeat(PROSE)),
    "cjk": lambda: _fit(_repeat("今天天气很好，孩子们在公园里踢足球。")),
    "accented": lambda: _fit(_repeat("Le café était très agréable, les enfants jouaient. ")),
    "emoji": lambda: _fit(_repeat("fun 😀🎉 ")),
    "digits": lambda: _fit(_repeat("order 12.34.56 ref 2024/01/02 ")),
    "base64": lambda: _fit(
        lambda k: _chat(base64.b64encode(PROSE.encode() * (k // 110 + 1)).decode()[: k // 4 * 4])
    ),
    "percent": lambda: _fit(lambda k: _chat(urllib.parse.quote(PROSE * (k // 100 + 1))[:k])),
    "escapes": lambda: _fit(_repeat("\\u0041\\u0042 ")),
    "messages": lambda: _fit(
        lambda k: _chat(
            messages=[{"role": "user", "content": f"hi {i} there"} for i in range(k // 40)]
        )
    ),
    "keys": lambda: _fit(
        lambda k: _chat("hi", metadata={f"k{i}": f"value {i} x" for i in range(k // 20)})
    ),
    "read": read_body,
}

CHILD = """
import asyncio, gc, json, sys, time
from pathlib import Path
from router import ingress
from router.config import ClassifierConfig, ModelConfig
from router.context import Api, RequestContext
from router.metrics import RouterMetrics
from router.sensitivity.classifier import build_classifier

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

body_path, model = sys.argv[1], sys.argv[2]
model = ModelConfig(path=Path(model), timeout_ms=60000) if model else None
cfg = ClassifierConfig(model=model)
clf = build_classifier(cfg, RouterMetrics())
asyncio.run(clf.classify(["hello there, how are you?"]))
body = Path(body_path).read_bytes()
gc.collect()
Path("/proc/self/clear_refs").write_text("5")
idle = rss("VmRSS")
start = time.process_time()
ctx = RequestContext("b", Api.chat, body, "application/json", "*/*", {})
ingress._read_openai(ctx)
parsed = time.process_time()
decision = asyncio.run(clf.classify(ctx.texts, ctx.headers, ctx.opaque, ctx.fields))
print(json.dumps({"rss_added_mb": round(rss("VmHWM") - idle, 1),
                  "parse_cpu_s": round(parsed - start, 3),
                  "cpu_s": round(time.process_time() - start, 3),
                  "decision": [decision.sensitivity, *decision.reasons]}))
"""


def measure(tree: Path, body: Path, model: str, limit_s: float) -> dict:
    """One child's row; a child still reading after `limit_s` is stopped and says so."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", CHILD, str(body), model]
    try:
        run = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True,
                             check=True, timeout=limit_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"rss_added_mb": None, "cpu_s": None, "timed_out_s": limit_s}
    return json.loads(run.stdout.splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--model", help="model.int8.onnx, or 'none' (default: MiniLM-L6)")
    p.add_argument("--shapes", default=",".join(BODIES))
    p.add_argument("--out", type=Path, help="write the rows here (JSON)")
    p.add_argument("--limit", type=float, default=300, help="seconds a child may take")
    common.ab_args(p)
    args = p.parse_args()
    result: dict = {"loadavg_before": common.loadavg(), "rows": []}
    with tempfile.TemporaryDirectory(prefix="bench-huge-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from router.testing.model import make_minilm_classifier

            model = str(make_minilm_classifier(work / "model"))
        model = "" if model == "none" else str(Path(model).resolve())
        trees = {"tree": common.ROOT}
        if args.rev:
            trees[common.rev_name(args.rev, args.rev_paths)] = common.checkout(
                args.rev, args.rev_paths, work
            )
        for shape in args.shapes.split(","):
            body = work / f"{shape}.json"
            body.write_bytes(BODIES[shape]())
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    row = {"shape": shape, "variant": name, "body_mb": body.stat().st_size / 1e6}
                    row |= measure(tree, body, model, args.limit)
                    result["rows"].append(row)
                    print(json.dumps(row), flush=True)
    common.finish(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
