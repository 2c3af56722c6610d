"""Rules-classifier cost per text: the full scan (every detector on every text, `scan_all`)
against the prefiltered scan (`scan`: one RE2 pass, then only the detectors that can fire).

    .venv/bin/python benchmarks/router/detectors.py --rounds 15
    # and the code before the prefilter, in a subprocess each round (same texts, same clock):
    mkdir -p /tmp/base && git archive 4a5ddb2 router | tar -x -C /tmp/base
    .venv/bin/python benchmarks/router/detectors.py --rounds 15 --baseline /tmp/base

Over the default recipe's eval split (500 texts, EN+ZH), CPU µs per text (this thread's
`time.thread_time`), medians over rounds. First the headline: each round runs the
baseline and this tree's `scan` (if --baseline: each in a fresh subprocess, the same way),
the full scan and the prefiltered scan over all texts back to back, and ratios are
medians of the per-round ratios. Then per detector (fewer rounds): full =
its `found()` on every text; new = its parts that the RE2 pass lets through (the pass is
its own row, "re2 pass"; each row also pays ~1 µs of this script's call overhead). Last,
one long text (~1 MB of the eval split's public prompts: hints fire, few detectors do),
once per variant. Prints /proc/loadavg: the machine is shared, read the ratios.
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

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "recipes/data/sensitivity/eval.jsonl"


def load() -> tuple[list[str], list[str]]:
    rows = rows_of(EVAL)
    return [r["text"] for r in rows], [r["text"] for r in rows if r["label"] == "public"]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def quality(clf: Classifier) -> None:
    """Rules-only precision/recall of "confidential" on the eval split (the model is off), and
    whether the prefiltered scan gives the full scan's labels on every text: a speed change
    must leave both lines as they were."""
    rows = rows_of(EVAL)
    fired = [bool(clf.scan([row["text"]])) for row in rows]
    truth = [row["label"] == "confidential" for row in rows]
    tp = sum(f and t for f, t in zip(fired, truth, strict=True))
    fp, fn = sum(fired) - tp, sum(truth) - tp
    differ = sum(clf.scan([row["text"]]) != clf.scan_all([row["text"]]) for row in rows)
    print(f"rules only on {len(rows)} eval texts: precision {tp / max(tp + fp, 1):.4f}, "
          f"recall {tp / max(tp + fn, 1):.4f} (tp {tp}, fp {fp}, fn {fn}); "
          f"prefiltered ≠ full scan on {differ} texts")  # fmt: skip


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


def headline(clf: Classifier, texts: list[str], rounds: int, baseline: Path | None) -> None:
    """The whole scan: old, new (and the baseline revision) back to back in every round.
    The baseline is compared with this tree run the same way, in a fresh subprocess each
    round: against the in-process `scan` (which follows the full scans and shares the
    process with them) it read 1.07 where callgrind and the subprocess pair read 0.77."""
    old, new, base, here = [], [], [], []
    for _ in range(rounds):
        if baseline:
            base.append(baseline_us(baseline))
            here.append(baseline_us(ROOT))
        old.append(per_text_us(lambda t: clf.scan_all([t]), texts))
        new.append(per_text_us(lambda t: clf.scan([t]), texts))
    ratio = statistics.median(n / o for n, o in zip(new, old, strict=True))
    print(f"whole scan, CPU µs per text (median of {rounds}): full {statistics.median(old):.1f}"
          f", prefiltered {statistics.median(new):.1f}, ratio {ratio:.2f}")  # fmt: skip
    if base:
        ratio = statistics.median(h / b for h, b in zip(here, base, strict=True))
        print(f"baseline {baseline}: {statistics.median(base):.1f}; this tree, same way: "
              f"{statistics.median(here):.1f}; this tree/baseline {ratio:.2f}")  # fmt: skip


def per_detector(clf: Classifier, texts: list[str], rounds: int) -> None:
    table = cells(clf, texts)
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in table}
    for _ in range(rounds):
        for name, (old, new) in table.items():
            times[name][0].append(per_text_us(old, texts))
            times[name][1].append(per_text_us(new, texts))
    print(f"{'µs per text':<14}{'full':>9}{'new':>9}{'new/full':>9}")
    for name, (old, new) in times.items():
        o, n = statistics.median(old), statistics.median(new)
        print(f"{name:<14}{o:>9.1f}{n:>9.1f}{n / o if o > 0.05 else float('nan'):>9.2f}")


def long_text(clf: Classifier, public: list[str], mb: float) -> None:
    big = "\n".join(public * (int(mb * 1e6) // sum(map(len, public)) + 1))[: int(mb * 1e6)]
    for name, fn in (("full", clf.scan_all), ("prefiltered", clf.scan)):
        start = time.thread_time()
        labels = fn([big])
        print(f"long text {len(big) / 1e6:.1f} MB, {name}: {time.thread_time() - start:.3f} s "
              f"CPU → {', '.join(labels)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--long-mb", type=float, default=1.0, help="size of the long text")
    parser.add_argument("--baseline", type=Path, help="folder with an older router/ package")
    args = parser.parse_args()
    texts, public = load()
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    print(f"loadavg before: {loadavg()}; {len(texts)} texts, "
          f"avg {sum(map(len, texts)) / len(texts):.0f} chars")  # fmt: skip
    for _ in range(2):  # warm-up: regex caches, stdnum / phonenumbers data
        per_text_us(lambda t: clf.scan_all([t]), texts), per_text_us(lambda t: clf.scan([t]), texts)
    quality(clf)
    headline(clf, texts, args.rounds, args.baseline)
    per_detector(clf, texts, max(3, args.rounds // 3))
    long_text(clf, public, args.long_mb)
    print(f"loadavg after: {loadavg()}; prefilter full scans: {clf._prefilter.full_scans}")


if __name__ == "__main__":
    main()
