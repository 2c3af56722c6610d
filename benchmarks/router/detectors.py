"""Rules-classifier cost per text: the full scan (every detector on every text, `scan_all`)
against the prefiltered scan (`scan`: one RE2 pass, then only the detectors that can fire).

    .venv/bin/python benchmarks/router/detectors.py --rounds 15
    # and the code before the prefilter, in a subprocess each round (same texts, same clock):
    mkdir -p /tmp/base && git archive 4a5ddb2 router | tar -x -C /tmp/base
    .venv/bin/python benchmarks/router/detectors.py --rounds 15 --baseline /tmp/base

Over the default recipe's eval split (500 texts, EN+ZH), variants interleaved round-robin
in one process (old, new, old, new, ...); each cell is the median over rounds of CPU µs
(this thread's `time.thread_time`) per text.
Per detector: old = its `found()` on every text; new = its parts that the RE2 pass lets
through (the pass itself is its own row, "re2 pass"). Then one long text (~1 MB of the
eval split's public prompts, the case where hints fire but few detectors do) timed once per
variant. Prints /proc/loadavg before and after: the machine is shared, read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier

EVAL = Path(__file__).resolve().parents[2] / "recipes/data/sensitivity/eval.jsonl"


def load() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["text"] for r in rows if r["label"] == "public"]


def per_text_us(fn: Callable[[str], object], texts: list[str]) -> float:
    """CPU µs per text of this thread (the router's budget is CPU per request; CPU time
    also ignores the time the shared machine's other work holds the core)."""
    start = time.thread_time()
    for text in texts:
        fn(text)
    return (time.thread_time() - start) / len(texts) * 1e6


def cells(
    clf: Classifier, texts: list[str]
) -> dict[str, tuple[Callable[[str], object], Callable[[str], object]]]:
    """name → (old, new) callables taking one text (per detector, the RE2 pass is done once
    up front so that its cost is counted only in its own row)."""
    pre = clf._prefilter
    passed = {text: pre.present(text) for text in texts}
    out: dict[str, tuple[Callable[[str], object], Callable[[str], object]]] = {
        "whole scan": (lambda t: clf.scan_all([t]), lambda t: clf.scan([t])),
        "re2 pass": (lambda t: None, pre.present),
    }
    for n, det in enumerate(clf.detectors):
        plan = [(found, need) for i, found, need in pre.parts if i == n]

        def gated(text: str, plan=plan) -> bool:
            got = passed[text]
            return any(need & got == need and found(text) for found, need in plan)

        out[det.label] = (det.found, gated)
    return out


BASELINE = """
import json, sys, time
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier
texts = [json.loads(line)["text"] for line in open(sys.argv[1]) if line.strip()]
clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
passes = []
for _ in range(4):  # the first pass loads stdnum/phonenumbers data: report the median of 3 more
    start = time.thread_time()
    for text in texts:
        clf.scan([text])
    passes.append((time.thread_time() - start) / len(texts) * 1e6)
print(sorted(passes[1:])[1])
"""


def baseline_us(tree: Path) -> float:
    """One round of another revision's `scan` (a `router/` package under `tree`)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = [sys.executable, "-c", BASELINE, str(EVAL)]
    return float(subprocess.run(run, cwd=tree, env=env, check=True, capture_output=True,
                                text=True).stdout)  # fmt: skip


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--long-mb", type=float, default=1.0, help="size of the long text")
    parser.add_argument("--baseline", type=Path, help="folder with an older router/ package")
    args = parser.parse_args()
    texts, public = load()
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    table = cells(clf, texts)
    print(f"loadavg before: {loadavg()}; {len(texts)} texts, "
          f"avg {sum(map(len, texts)) / len(texts):.0f} chars; {args.rounds} rounds")  # fmt: skip
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in table}
    for old, new in table.values():  # warm-up (regex caches, stdnum/phonenumbers data)
        per_text_us(old, texts[:50]), per_text_us(new, texts[:50])
    base: list[float] = []
    for _ in range(args.rounds):
        if args.baseline:
            base.append(baseline_us(args.baseline))
        for name, (old, new) in table.items():
            times[name][0].append(per_text_us(old, texts))
            times[name][1].append(per_text_us(new, texts))
    print(f"{'µs per text':<14}{'old (full)':>11}{'new':>9}{'new/old':>9}")
    for name, (old, new) in times.items():
        o, n = statistics.median(old), statistics.median(new)
        print(f"{name:<14}{o:>11.1f}{n:>9.1f}{n / o if o > 0.05 else float('nan'):>9.2f}")
    if base:
        ratio = statistics.median(times["whole scan"][1]) / statistics.median(base)
        print(f"baseline ({args.baseline}) whole scan: {statistics.median(base):.1f} µs per "
              f"text; new/baseline {ratio:.2f}")  # fmt: skip
    big = "\n".join(public * (int(args.long_mb * 1e6) // sum(map(len, public)) + 1))
    big = big[: int(args.long_mb * 1e6)]
    for name, fn in (("old", clf.scan_all), ("new", clf.scan)):
        start = time.thread_time()
        labels = fn([big])
        print(f"long text {len(big) / 1e6:.1f} MB, {name}: {time.thread_time() - start:.3f} s CPU "
              f"→ {', '.join(labels)}")  # fmt: skip
    print(f"loadavg after: {loadavg()}; prefilter fallbacks: {clf._prefilter.fallbacks}")


if __name__ == "__main__":
    main()
