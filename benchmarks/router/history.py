"""Chat history: what the classifier costs when every turn resends the conversation, with
the score cache (router/sensitivity/scores.py) and without it.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/router/history.py --model M.onnx \
        [--parts replay,first,mix] [--rounds 3]

Variants are classifiers of their own, built alike (rules as deployed, the model with its
default settings) but for `cache_entries` (`cache`: the default, `nocache`: 0), in this
process; each part runs its variants round-robin (A B A B ...). CPU is this process's
(every thread) per request, request parsing (router.ingress) included.

- replay: a conversation per round whose every turn resends the history: turn 1 is a
  system and a user message of ~200 tokens each, each later turn adds ~400 tokens (the
  assistant's answer and the next user message): ~8k tokens at turn 20. `cache` sends
  turns 1 to 20 in order; `nocache` turns 1 and 20. Reported: turn 1, turn 20, their ratio.
- first: a 32k-token message never seen before (`cache`, cold for it): CPU, wall, windows.
- mix: classified requests per second and CPU per request, 16 clients at once, each
  sending its next request when the last is classified (a chat client waits for its
  answer). `chat`: each client one conversation per round of 1-10 turns (drawn), a user
  message of ~60 tokens and an answer of ~150 a turn, each request the next turn with the
  whole history (the same conversations for `cache` and `nocache`); `prompts`: 8 prompts
  of ~40 tokens per client, one per request (the short-prompt reference).

Text is the default recipe's eval split's public rows that no rule fires on, drawn at
random per message, so nothing repeats by accident. The threshold is 0.99: the benchmark
model (make_model.py, an untrained head) then calls every window public and each one must
be read, as a trained model does with public text. Results: docs/decisions/009-score-cache.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common
from router import ingress
from router.config import ClassifierConfig, ModelConfig
from router.context import Api, RequestContext
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier, build_classifier

THRESHOLD = 0.99
Messages = list[tuple[str, str]]  # (role, content)


class Texts:
    """Public text no rule fires on, in messages of about a given number of tokens."""

    def __init__(self, clf: Classifier) -> None:
        tokenizer = clf.batcher.model.windows.tokenizer
        plain = [t for t in common.eval_texts("public") if t.isascii() and not any(
            c.isdigit() for c in t)]  # fmt: skip
        self.rows = [r for r in plain if not clf.scan([r])]
        self.tokens = {r: len(tokenizer.encode(r, add_special_tokens=False).ids) for r in self.rows}
        self.scan = clf.scan

    def message(self, rng: random.Random, tokens: int) -> str:
        """Rows drawn at random until `tokens`; a row is left out where a rule would fire on
        it next to the words before it (context words)."""
        words: list[str] = []
        count = 0
        while count < tokens:
            row = rng.choice(self.rows)
            if not self.scan([" ".join([*words[-40:], row])]):
                words.extend(row.split())
                count += self.tokens[row]
        return " ".join(words)


def context(messages: Messages) -> RequestContext:
    chat = [{"role": role, "content": text} for role, text in messages]
    body = json.dumps({"model": "m", "messages": chat}).encode()
    ctx = RequestContext("bench", Api.chat, body, "application/json", "*/*", {})
    ingress._read_openai(ctx)
    return ctx


async def measured(clf: Classifier, messages: Messages) -> dict:
    """One request classified alone: CPU and wall ms, windows the model scored; the model
    must have decided it public."""
    scored = clf.batcher.texts
    c0, w0 = time.process_time(), time.perf_counter()
    ctx = context(messages)
    decision = await clf.classify(ctx.texts, ctx.headers, ctx.opaque, ctx.fields)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    assert decision.reasons == (), decision  # every window read, none flagged, none failed
    return {"cpu_ms": round(cpu * 1000, 2), "wall_ms": round(wall * 1000, 2),
            "scored": clf.batcher.texts - scored}  # fmt: skip


def conversation(texts: Texts, rng: random.Random, turns: int = 20, tokens: int = 200):
    """Each turn's messages: a system and a user message, then an answer and a user message
    more per turn."""
    messages = [("system", texts.message(rng, tokens)), ("user", texts.message(rng, tokens))]
    out = [list(messages)]
    for _ in range(turns - 1):
        messages += [
            ("assistant", texts.message(rng, tokens)),
            ("user", texts.message(rng, tokens)),
        ]
        out.append(list(messages))
    return out


def chats(texts: Texts, rng: random.Random, conversations: int, user: int, reply: int):
    """A chat client's requests: conversations of 1-10 turns (drawn) one after another, a
    user message of ~`user` tokens and an answer of ~`reply` a turn; each request the next
    turn with the whole history."""
    out: list[Messages] = []
    for _ in range(conversations):
        messages: Messages = []
        for turn in range(rng.randint(1, 10)):
            if turn:
                messages.append(("assistant", texts.message(rng, reply)))
            messages.append(("user", texts.message(rng, user)))
            out.append(list(messages))
    return out


async def throughput(clf: Classifier, clients: list[list[Messages]]) -> dict:
    """The clients at once, each sending its next request when the last is classified (a
    chat client waits for its answer)."""

    async def client(requests: list[Messages]) -> None:
        for messages in requests:
            ctx = context(messages)
            decision = await clf.classify(ctx.texts, ctx.headers, ctx.opaque, ctx.fields)
            assert decision.reasons == (), decision

    scored = clf.batcher.texts
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(requests) for requests in clients))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n = sum(map(len, clients))
    return {"rps": round(n / wall, 1), "cpu_ms": round(cpu / n * 1000, 2), "requests": n,
            "scored_per_request": round((clf.batcher.texts - scored) / n, 2)}  # fmt: skip


async def replay(clfs: dict[str, Classifier], texts: Texts, rounds: int) -> list[dict]:
    rows = []
    for r in range(rounds):
        turns = conversation(texts, random.Random(r))
        for name, clf in clfs.items():
            sent = range(1, 21) if name == "cache" else (1, 20)
            got = {t: await measured(clf, turns[t - 1]) for t in sent}
            row = {"part": "replay", "variant": name, "round": r}
            for t in (1, 20):
                row |= {f"turn{t}_{k}": v for k, v in got[t].items()}
            row["turn20_per_turn1"] = round(got[20]["cpu_ms"] / got[1]["cpu_ms"], 3)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    return rows


async def first_seen(clf: Classifier, texts: Texts, rounds: int, tokens: int) -> list[dict]:
    rows = []
    for r in range(rounds):
        text = texts.message(random.Random(1000 + r), tokens - 2)  # [CLS] and [SEP]
        windows = len(clf.batcher.model.windows([text], 10**9))
        got = await measured(clf, [("user", text)])
        rows.append({"part": "first", "variant": "cache", "round": r, "tokens": tokens,
                     "windows": windows, **got,
                     "cpu_ms_per_window": round(got["cpu_ms"] / windows, 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


async def mix(clfs: dict[str, Classifier], texts: Texts, args: argparse.Namespace) -> list:
    """Per round new conversations, the same for both chat variants."""
    rows = []
    for r in range(args.rounds):
        rng = random.Random(2000 + r)
        chat = [chats(texts, rng, args.conversations, args.user_tokens, args.reply_tokens)
                for _ in range(args.clients)]  # fmt: skip
        prompts = [[[("user", texts.message(rng, 40))] for _ in range(args.prompts)]
                   for _ in range(args.clients)]  # fmt: skip
        cells = {"chat/cache": (clfs["cache"], chat), "chat/nocache": (clfs["nocache"], chat),
                 "prompts/nocache": (clfs["nocache"], prompts)}  # fmt: skip
        for name, (clf, clients) in cells.items():
            rows.append({"part": "mix", "variant": name, "round": r,
                         **await throughput(clf, clients)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["part"], row["variant"]), []).append(row)
    out = []
    for (part, variant), rs in groups.items():
        values = {k: v for k, v in common.medians(rs).items() if v is not None and k != "round"}
        out.append({"part": part, "variant": variant, "rounds": len(rs), **values})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="model.int8.onnx (make_model.py)")
    ap.add_argument("--parts", default="replay,first,mix")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16, help="mix: clients at once")
    ap.add_argument("--conversations", type=int, default=1, help="mix: per client and round")
    ap.add_argument("--user-tokens", type=int, default=60)
    ap.add_argument("--reply-tokens", type=int, default=150)
    ap.add_argument("--prompts", type=int, default=8, help="mix: per client and round")
    ap.add_argument("--first-tokens", type=int, default=32768)
    args = ap.parse_args()
    parts = args.parts.split(",")

    def classifier(entries: int) -> Classifier:
        model = ModelConfig(path=args.model, threshold=THRESHOLD, timeout_ms=60_000,
                            cache_entries=entries)  # fmt: skip
        return build_classifier(ClassifierConfig(model=model), RouterMetrics())

    clfs = {"cache": classifier(ModelConfig.model_fields["cache_entries"].default),
            "nocache": classifier(0)}  # fmt: skip
    texts = Texts(clfs["cache"])

    async def run() -> list[dict]:
        for clf in clfs.values():  # warm-up: sessions, tokenizer, detectors
            await measured(clf, [("user", texts.message(random.Random(99), 300))])
        rows = []
        if "replay" in parts:
            rows += await replay(clfs, texts, args.rounds)
        if "first" in parts:
            rows += await first_seen(clfs["cache"], texts, args.rounds, args.first_tokens)
        if "mix" in parts:
            rows += await mix(clfs, texts, args)
        for clf in clfs.values():
            clf.close()
        return rows

    print(json.dumps({"loadavg_before": common.loadavg()}), flush=True)
    rows = asyncio.run(run())
    print(json.dumps({"loadavg_after": common.loadavg()}), flush=True)
    for row in summary(rows):
        print(json.dumps(row), flush=True)
    if "replay" in parts:
        cache = [r["turn20_per_turn1"] for r in rows if r["variant"] == "cache"]
        print(json.dumps({"turn20_per_turn1_cache_median": statistics.median(cache)}))


if __name__ == "__main__":
    main()
