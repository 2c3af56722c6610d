"""Classification cost of long prompts, and the public share routed on-prem, A/B-able.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/router/long_prompts.py --model M.onnx
    PYTHONPATH=/tmp/base .venv/bin/python benchmarks/router/long_prompts.py --model M.onnx \
        --lengths 128 --eval recipes/data/sensitivity/eval.jsonl   # the same on other code

For each prompt length (tokens, special tokens included) a chat body is built from the
eval split's public prompts, read by the router's ingress and classified by the router's
classifier (rules, then the ONNX model on every window), one request at a time: CPU
seconds of the process (all threads) per request, wall time, and the windows scored.
`--eval` sends every public row of the split as a one-message chat request and reports
the share the classifier calls confidential (routed on-prem). Both only touch the
classifier and ingress functions that old and new code share, so PYTHONPATH picks the
code under test. Results: README.md, "Long prompts".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from router import ingress
from router.config import ClassifierConfig, ModelConfig
from router.context import Api, RequestContext
from router.metrics import RouterMetrics
from router.sensitivity.classifier import build_classifier


def chat_context(text: str) -> RequestContext:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    ctx = RequestContext("bench", Api.chat, body, "application/json", "*/*", {})
    ingress._read_openai(ctx)
    return ctx


async def classify(clf, ctx: RequestContext):
    fields = getattr(ctx, "fields", None)
    extra = () if fields is None else (fields,)
    return await clf.classify(ctx.texts, ctx.headers, ctx.opaque, *extra)


def prompt_of(tokens: int, rows: list[str], tokenizer, scan) -> str:
    """Public prompts joined until `tokens` tokens (special tokens included); a row is
    left out where a rule would fire on it next to the previous one (context words)."""
    words: list[str] = []
    count, i = 2, 0  # [CLS] and [SEP]
    pick = random.Random(0)
    while count < tokens:  # rows in order, then drawn at random: no window repeats
        row = rows[i] if i < len(rows) else pick.choice(rows)
        if not scan([" ".join([*words[-40:], row])]):
            words.extend(row.split())
            count += len(tokenizer.encode(row, add_special_tokens=False).ids)
        i += 1
    while len(tokenizer.encode(" ".join(words)).ids) > tokens:
        del words[-max(1, (len(tokenizer.encode(" ".join(words)).ids) - tokens) // 4) :]
    return " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="ONNX model; without it: rules only (--eval)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--lengths", default="128,1024,8192,32768")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20, help="per round, for 128 tokens")
    ap.add_argument("--eval", type=Path, help="a split: share of public rows called confidential")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    # no score cache (where the code has one): a prompt is sent again and again here
    uncached = {"cache_entries": 0} if "cache_entries" in ModelConfig.model_fields else {}
    model = args.model and ModelConfig(
        path=args.model, threshold=args.threshold, timeout_ms=6e4, **uncached
    )
    clf = build_classifier(ClassifierConfig(model=model), RouterMetrics())
    split = args.eval or Path("recipes/data/sensitivity/eval.jsonl")
    rows = [json.loads(line) for line in split.read_text().splitlines() if line.strip()]
    public = [r["text"] for r in rows if r["label"] == "public"]
    lengths = [int(n) for n in args.lengths.split(",")] if args.model else []
    if args.model:
        tokenizer = Tokenizer.from_file(str(args.model.parent / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()

    # rows no rule can fire on, joined or not: the model is what is measured
    plain = [p for p in public if p.isascii() and not any(c.isdigit() for c in p)]
    plain = [p for p in plain if not clf.scan([p])]

    async def run() -> None:
        for tokens in lengths:
            text = prompt_of(tokens, plain, tokenizer, clf.scan)
            assert not clf.scan([text]), "the prompt must reach the model (no rule fires)"
            n = max(1, args.requests * 128 // tokens)
            await classify(clf, chat_context(text))  # warm-up
            cpu, wall = [], []
            for _ in range(args.rounds):
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    decision = await classify(clf, chat_context(text))
                cpu.append((time.process_time() - c0) / n)
                wall.append((time.perf_counter() - w0) / n)
            windows = getattr(clf.batcher.model, "windows", None)
            count = len(windows([text], 10**9)) if windows else 1
            print(json.dumps({
                "tokens": tokens, "windows": count, "requests": n * args.rounds,
                "cpu_ms": round(statistics.median(cpu) * 1000, 2),
                "wall_ms": round(statistics.median(wall) * 1000, 2),
                "cpu_ms_min": round(min(cpu) * 1000, 2), "reasons": decision.reasons,
            }), flush=True)  # fmt: skip
        if args.eval:
            flagged = 0
            for text in public:
                decision = await classify(clf, chat_context(text))
                flagged += decision.confidential
            print(json.dumps({"public_rows": len(public), "on_prem": flagged,
                              "share": round(flagged / len(public), 4)}), flush=True)  # fmt: skip
        if clf.batcher is not None:
            clf.batcher.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
