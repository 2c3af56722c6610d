"""Rules-classifier cost per text: the full scan (every detector on every text, `scan_all`)
against the prefiltered scan (`scan`: one RE2 pass, then only the detectors that can fire).

    .venv/bin/python benchmarks/router/detectors.py --rounds 15
    # and another revision (here: the code before the prefilter), in a subprocess each round
    # (same texts, same clock):
    .venv/bin/python benchmarks/router/detectors.py --rounds 15 --rev 4a5ddb2

Over the default recipe's eval split (500 texts, EN+ZH), CPU µs per text (this thread's
`time.thread_time`), medians over rounds. First the headline: each round runs the
revision's and this tree's `scan` (with --rev: each in a fresh subprocess, the same way),
the full scan and the prefiltered scan over all texts back to back, and ratios are
medians of the per-round ratios. Then per detector (fewer rounds): full =
its `found()` on every text; new = its parts that the RE2 pass lets through (the pass is
its own row, "re2 pass"; each row also pays ~1 µs of this script's call overhead). Last,
one long text (~1 MB of the eval split's public prompts: hints fire, few detectors do),
once per variant. Prints /proc/loadavg: the machine is shared, read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier


def quality(clf: Classifier) -> None:
    """Rules-only precision/recall of "confidential" on the eval split (the model is off), and
    whether the prefiltered scan gives the full scan's labels on every text: a speed change
    must leave both lines as they were."""
    rows = common.eval_rows()
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
    """One round of a checkout's `scan` in a fresh subprocess (its `router/` package)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = [sys.executable, "-c", BASELINE, str(common.EVAL)]
    return float(subprocess.run(run, cwd=tree, env=env, check=True, capture_output=True,
                                text=True).stdout)  # fmt: skip


def headline(
    clf: Classifier, texts: list[str], rounds: int, rev: str | None, paths: list[str]
) -> None:
    """The whole scan: old, new (and the revision's) back to back in every round. The
    revision is compared with this tree run the same way, in a fresh subprocess each
    round: against the in-process `scan` (which follows the full scans and shares the
    process with them) it reads differently from what callgrind and the subprocess pair do."""
    variants = {
        "full": partial(per_text_us, lambda t: clf.scan_all([t]), texts),
        "prefiltered": partial(per_text_us, lambda t: clf.scan([t]), texts),
    }
    if rev:
        variants = {
            "rev": partial(baseline_us, common.checkout(rev, paths)),
            "tree": partial(baseline_us, common.ROOT),
        } | variants
    got = common.round_robin(variants, rounds)
    old, new = got["full"], got["prefiltered"]
    print(f"whole scan, CPU µs per text (median of {rounds}): full {statistics.median(old):.1f}"
          f", prefiltered {statistics.median(new):.1f}, "
          f"ratio {common.median_ratio(new, old):.2f}")  # fmt: skip
    if rev:
        base, here, rev = got["rev"], got["tree"], common.rev_name(rev, paths)
        print(f"{rev}: {statistics.median(base):.1f}; this tree, same way: "
              f"{statistics.median(here):.1f}; this tree/{rev} "
              f"{common.median_ratio(here, base):.2f}")  # fmt: skip


def per_detector(clf: Classifier, texts: list[str], rounds: int) -> None:
    variants = {
        (name, which): partial(per_text_us, fn, texts)
        for name, pair in cells(clf, texts).items()
        for which, fn in zip(("full", "new"), pair, strict=True)
    }
    times = {k: statistics.median(v) for k, v in common.round_robin(variants, rounds).items()}
    print(f"{'µs per text':<14}{'full':>9}{'new':>9}{'new/full':>9}")
    for name, which in times:
        if which == "full":
            o, n = times[(name, "full")], times[(name, "new")]
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
    common.ab_args(parser)  # that revision's `scan`, in a subprocess as this tree's
    args = parser.parse_args()
    texts, public = common.eval_texts(), common.eval_texts("public")
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    print(f"loadavg before: {common.loadavg()}; {len(texts)} texts, "
          f"avg {sum(map(len, texts)) / len(texts):.0f} chars")  # fmt: skip
    for _ in range(2):  # warm-up: regex caches, stdnum / phonenumbers data
        per_text_us(lambda t: clf.scan_all([t]), texts), per_text_us(lambda t: clf.scan([t]), texts)
    quality(clf)
    headline(clf, texts, args.rounds, args.rev, args.rev_paths)
    per_detector(clf, texts, max(3, args.rounds // 3))
    long_text(clf, public, args.long_mb)
    print(f"loadavg after: {common.loadavg()}; prefilter fallbacks: {clf._prefilter.fallbacks}")


if __name__ == "__main__":
    main()
