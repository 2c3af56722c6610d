"""The organisation's rules (`classifier.sensitivity`) at the issue's size: what 10,000
terms, 20 patterns and 50 host rules add to the rules-only classification of a request.

Variants, interleaved in one process (A B A B ...), each a `Classifier` without a model:
`none` (no policy: today's rules) and `policy` (the synthetic policy below). Each round
classifies every eval-split text as one chat request (`Classifier.classify`, as the
router calls it: views, normalisation, detectors, policy) and takes this thread's CPU
time per request; medians over rounds, and the ratio per round. Also prints how many eval
texts the policy flags that the built-ins did not (the synthetic words are made up, so
few), and the policy's build time.

    .venv/bin/python benchmarks/router/policy.py --rounds 15
    # the whole router, as processes under wrk (bench.py's variant router-policy):
    .venv/bin/python benchmarks/router/bench.py --variants router,router-policy \
        --concurrency 16 --latency 0 --rounds 5 --seconds 3 --model none
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier

SYLLABLES = ("ka", "ro", "mi", "ne", "tu", "sa", "vel", "dor", "bri", "an", "kest", "quill",
             "mar", "zo", "pen", "lux", "ter", "fi", "gal", "nor", "sk", "y", "os", "wyn", "har",
             "cal", "dre")  # fmt: skip
HAN = "鹰隼鹭雀燕鸥鹤凤龙虎狮豹狼熊鹿马牛羊星辰月日云雷电风雨雪霜冰火山川河海湖泉林森"
SCHEMES = ("luhn", "mod97", "iso7064_mod11_2", "iso7064_mod11_10", "iso7064_mod37_2",
           "iso7064_mod37_36", "verhoeff", "damm", None, None)  # fmt: skip


def synthetic_policy(
    terms: int = 10_000, patterns: int = 20, hosts: int = 50, seed: int = 0
) -> dict:
    """Made-up code names (one and two words, 5% Chinese), ID formats with check digits,
    lengths or prefixes, and internal domains with their networks (IPv4 and IPv6)."""
    rnd = random.Random(seed)

    def word() -> str:
        return "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 3))).capitalize()

    words: set[str] = set()
    while len(words) < terms:
        if rnd.random() < 0.05:
            words.add("".join(rnd.choice(HAN) for _ in range(rnd.randint(3, 4))))
        else:
            words.add(word() if rnd.random() < 0.6 else f"{word()} {word()}")
    ordered = sorted(words)
    lists = [{"name": f"list-{i}", "words": ordered[i::10]} for i in range(10)]
    rules = []
    for i in range(patterns):
        prefix = "".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
        rule: dict = {"name": f"id-{i}", "regex": rf"\b{prefix}-(?P<v>\d{{{6 + i % 5}}})\b"}
        scheme = SCHEMES[i % len(SCHEMES)]
        if scheme:
            rule["validator"] = scheme
        elif i % 2:
            rule["lengths"] = [6 + i % 5]
        else:
            rule["prefixes"] = ["9"]
        rules.append(rule)
    host_rules = [
        {"name": f"site-{i}", "domains": [f"{word().lower()}.corp{i}.example.com",
                                          f"*.int{i}.example.net"],
         "cidrs": [f"10.{i}.0.0/16", f"fd00:{i:x}::/32"]}
        for i in range(hosts)
    ]  # fmt: skip
    return {"terms": lists, "patterns": rules, "hosts": host_rules}


def classifier(policy: dict | None) -> Classifier:
    config = ClassifierConfig.model_validate({"sensitivity": policy or {}})
    return Classifier(config, RouterMetrics(), None)


def per_request_us(clf: Classifier, texts: list[str]) -> float:
    async def run() -> None:
        for text in texts:
            await clf.classify([text])

    start = time.thread_time()
    asyncio.run(run())
    return (time.thread_time() - start) / len(texts) * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--terms", type=int, default=10_000)
    args = p.parse_args()
    print(f"loadavg before {common.loadavg()}")
    texts = common.eval_texts()
    start = time.perf_counter()
    with_policy = classifier(synthetic_policy(args.terms))
    print(f"policy: {args.terms} terms, 20 patterns, 50 hosts; built in "
          f"{time.perf_counter() - start:.2f} s")  # fmt: skip
    variants = {"none": classifier(None), "policy": with_policy}
    extra = sum(bool(with_policy.scan([t])) and not variants["none"].scan([t]) for t in texts)
    print(f"eval texts: {len(texts)}; flagged by the policy alone: {extra}")
    samples = common.round_robin(
        {name: (lambda c=c: per_request_us(c, texts)) for name, c in variants.items()},
        args.rounds,
        warmup=1,
    )
    for name, values in samples.items():
        print(f"{name:>7}: median {statistics.median(values):.1f} µs CPU per request "
              f"(min {min(values):.1f}, max {max(values):.1f}, {args.rounds} rounds)")  # fmt: skip
    ratios = [p / n for p, n in zip(samples["policy"], samples["none"], strict=True)]
    print(f"policy / none: median {statistics.median(ratios):.3f} "
          f"(per-round ratios {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    print(f"loadavg after {common.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
