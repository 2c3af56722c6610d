"""Generate the sensitivity recipe's train/eval/calib splits (synthetic, deterministic).

    python recipes/data/sensitivity/generate.py            # rewrite the three JSONL files
    python recipes/data/sensitivity/generate.py --stats    # also print the counts table

Why a generator and not a hand-written file: the router's classifier must learn what makes
a prompt confidential (a valid card number, a named patient's diagnosis, a live key), not the
wording of a few examples. Many templates x many fillers x shared chat wrappers give variety;
held-out templates in eval check generalisation; seeded randomness keeps it reproducible
(same Python and python-stdnum -> byte-identical files).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from concepts import CONCEPTS, bury, compose, mix
from stdnum import luhn
from templates import (
    CONFIDENTIAL,
    CONTEXTS,
    CROSS_WRAPPERS,
    PREFIXES,
    PUBLIC,
    SUFFIXES,
    WRAPPERS,
)
from values import FILLERS, card_candidates

SEED = 20261128
CONCEPT_SEED = 20261207
SPLIT_SIZES = {"train": 1600, "eval": 500, "calib": 300}
CONCEPT_ROWS = {"train": 60, "eval": 10, "calib": 8}
"""Rows per concept category seen in training (concepts.py, role "train"), per split."""
MIXED_ROWS = {"train": 150, "eval": 20, "calib": 10}
"""Short public texts hiding one sentence of a trained confidential category (`mixed`)."""
HELDOUT_ROWS = 40
"""Rows per held-out concept category, all in eval (subset out_of_template)."""
BURIED_ROWS = 30
"""Long public texts with one held-out confidential sentence (out_of_template)."""
HARD_NEGATIVE_ROWS = 30
"""Fresh rows per hard-negative kind, eval subset hard_negative."""
HARD_NEGATIVE_KINDS = ("digits_math", "digits_ids", "confidentiality_questions",
                       "privacy_law_cases", "public_bio", "published_contact", "group_health",
                       "long_public")  # fmt: skip
"""The public kinds that were measured to look confidential: digit-heavy text, questions
about confidentiality and privacy law, public biographies and contacts, health facts about
groups, long documents. Other public categories train but are not counted here."""
EVAL_ONLY_SEED = 20261208
"""Seed of eval's out-of-template and hard-negative rows: their own stream, so adding or
changing trained categories leaves these rows as they were."""
CONCEPT_ZH_SHARE = 0.4
CONFIDENTIAL_SHARE = 0.45
HELDOUT_EVERY = 5  # template i with i % 5 == 4 appears in eval only
EVAL_HELDOUT_P = 0.2  # share of eval rows drawn from held-out templates, where a category has any
P_WRAP, P_CROSS, P_PREFIX, P_SUFFIX, P_CONTEXT = 0.45, 0.07, 0.18, 0.2, 0.1
P_COMBO = 0.12  # a public question first, then the row's own body ("Also, ...")
JOINERS = {
    "en": [" Also, ", "\n\nSecond thing: ", " And ", "\nPS: "],
    "zh": ["另外，", "\n还有：", "顺便问一下，"],
}
HERE = Path(__file__).resolve().parent
SUBSETS = ["template", "out_of_template", "hard_negative"]


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    weight: int
    zh_share: float
    templates: dict[str, list[str]]


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    category: str
    lang: str
    heldout: bool
    subset: str = "template"

    def to_json(self) -> str:
        row = {"text": self.text, "label": self.label, "category": self.category,
               "lang": self.lang, "subset": self.subset}  # fmt: skip
        return json.dumps(row, ensure_ascii=False)


def categories() -> list[Category]:
    out = []
    for label, table in (("confidential", CONFIDENTIAL), ("public", PUBLIC)):
        for name, (weight, zh_share, en, zh) in table.items():
            out.append(Category(name, label, weight, zh_share, {"en": en, "zh": zh}))
    return out


def allocate(total: int, cats: list[Category]) -> dict[str, int]:
    """Rows per category: the label shares first, then by weight (largest remainder)."""
    n_conf = round(total * CONFIDENTIAL_SHARE)
    counts: dict[str, int] = {}
    for label, n in (("confidential", n_conf), ("public", total - n_conf)):
        group = [c for c in cats if c.label == label]
        weights = sum(c.weight for c in group)
        exact = {c.name: n * c.weight / weights for c in group}
        counts.update({k: int(v) for k, v in exact.items()})
        short = n - sum(counts[c.name] for c in group)
        for k in sorted(exact, key=lambda k: exact[k] - int(exact[k]), reverse=True)[:short]:
            counts[k] += 1
    return counts


def fill(rng: random.Random, template: str, lang: str) -> str:
    """Format a template, drawing each distinct slot once (`{name2}` = a second name)."""
    slots = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    values = {slot: FILLERS[slot.rstrip("0123456789")](rng, lang) for slot in sorted(slots)}
    return template.format(**values)


def pick(rng: random.Random, items: list[str], heldout: bool) -> str:
    """A template from the held-out (every HELDOUT_EVERY-th) or the shared part of a list."""
    part = [t for i, t in enumerate(items) if (i % HELDOUT_EVERY == HELDOUT_EVERY - 1) == heldout]
    return rng.choice(part or items)


def has_heldout(items: list[str]) -> bool:
    return len(items) >= HELDOUT_EVERY


def render(rng: random.Random, cat: Category, split: str) -> Row:
    """One prompt: body template + optional chat wrapper + optional neutral context."""
    lang = "zh" if rng.random() < cat.zh_share else "en"
    body_lang, wrappers = lang, WRAPPERS[lang]
    if rng.random() < P_CROSS:  # a request in one language around a body in the other
        body_lang, wrappers = ("en" if lang == "zh" else "zh"), CROSS_WRAPPERS[lang]
    pool = cat.templates[body_lang]
    heldout = split == "eval" and has_heldout(pool) and rng.random() < EVAL_HELDOUT_P
    text = fill(rng, pick(rng, pool, heldout), body_lang)
    if rng.random() < P_COMBO:
        other = rng.choice([c for c in categories() if c.label == "public"])
        first = fill(rng, pick(rng, other.templates[body_lang], False), body_lang)
        text = join(first, rng.choice(JOINERS[body_lang]), text, body_lang)
    if wrappers is not WRAPPERS[lang] or rng.random() < P_WRAP:
        wrapper = pick(rng, wrappers, split == "eval" and rng.random() < EVAL_HELDOUT_P)
        text = fill(rng, wrapper.replace("{x}", "{{x}}"), lang).format(x=text)
    if rng.random() < P_CONTEXT:
        text = rng.choice(CONTEXTS[lang]) + ("" if lang == "zh" else " ") + text
    elif rng.random() < P_PREFIX:
        text = rng.choice(PREFIXES[lang]) + ("" if lang == "zh" else " ") + text
    if rng.random() < P_SUFFIX:
        text = add_suffix(text, rng.choice(SUFFIXES[lang]), lang)
    return Row(text, cat.label, cat.name, body_lang, heldout)


def join(first: str, joiner: str, second: str, lang: str) -> str:
    """Two requests in one prompt, punctuated the way a person would type them."""
    if lang == "zh":
        return first + ("" if first[-1] in "。！？!?" else "。") + joiner + second
    if first[-1] not in ".?!":
        first += "."
    if joiner.strip() in ("Also,", "And") and second[:2].istitle():
        second = second[0].lower() + second[1:]
    return first + joiner + second


def add_suffix(text: str, suffix: str, lang: str) -> str:
    if "\n" in text:
        return text + "\n" + suffix
    if lang == "zh":
        return text + ("" if text[-1] in "。！？!?" else "。") + suffix
    return text + " " + suffix


def acceptable(row: Row) -> bool:
    """Card-number ground truth: cards pass Luhn, public rows carry no Luhn-valid PAN."""
    found = card_candidates(row.text)
    if row.category == "card":
        return bool(found) and all(luhn.is_valid(d) for d in found)
    if row.category == "luhn_fail":
        return bool(found) and not any(luhn.is_valid(d) for d in found)
    if row.label == "public":
        return not any(luhn.is_valid(d) for d in found)
    return True


def generate(seed: int = SEED) -> dict[str, list[Row]]:
    """All three splits; no text appears twice anywhere (so the splits are disjoint).

    The template rows come first, from `seed`, exactly as before the concept rows existed;
    the concept rows follow from their own seed, so either part can change alone.
    """
    rng = random.Random(seed)
    cats = categories()
    seen: set[str] = set()
    splits: dict[str, list[Row]] = {}
    for split, size in SPLIT_SIZES.items():
        rows = []
        counts = allocate(size, cats)
        for cat in cats:
            for _ in range(counts[cat.name]):
                rows.append(unique(lambda c=cat, s=split: render(rng, c, s), seen))
        rng.shuffle(rows)
        splits[split] = rows
    add_eval_only(random.Random(seed - SEED + EVAL_ONLY_SEED), splits["eval"], seen)
    add_concepts(random.Random(seed - SEED + CONCEPT_SEED), splits, seen)
    shuffle = random.Random(seed)
    for rows in splits.values():
        shuffle.shuffle(rows)
    return splits


def concept_row(rng: random.Random, name: str, subset: str) -> Row:
    label = CONCEPTS[name][0]
    lang = "zh" if rng.random() < CONCEPT_ZH_SHARE else "en"
    return Row(compose(rng, name, lang), label, name, lang, subset != "template", subset)


def add_eval_only(rng: random.Random, rows: list[Row], seen: set[str]) -> None:
    """Eval's held-out categories, buried secrets and hard negatives (subsets
    out_of_template and hard_negative); no trained row exists yet, so none can clash."""
    heldout = [n for n, (_, role, _) in CONCEPTS.items() if role == "heldout"]
    for name in heldout:
        rows += [unique(lambda n=name: concept_row(rng, n, "out_of_template"), seen)
                 for _ in range(HELDOUT_ROWS)]  # fmt: skip
    secrets = [n for n in heldout if CONCEPTS[n][0] == "confidential"]

    def buried() -> Row:
        name, lang = rng.choice(secrets), "zh" if rng.random() < CONCEPT_ZH_SHARE else "en"
        return Row(bury(rng, name, lang), "confidential", "buried_" + name, lang, True,
                   "out_of_template")  # fmt: skip

    rows += [unique(buried, seen) for _ in range(BURIED_ROWS)]
    for name in HARD_NEGATIVE_KINDS:
        rows += [unique(lambda n=name: concept_row(rng, n, "hard_negative"), seen)
                 for _ in range(HARD_NEGATIVE_ROWS)]  # fmt: skip


def add_concepts(rng: random.Random, splits: dict[str, list[Row]], seen: set[str]) -> None:
    """Rows of the trained concept categories in every split (subset template), then the
    mixed rows: a few public sentences around one trained secret."""
    trained = [n for n, (_, role, _) in CONCEPTS.items() if role == "train"]
    for split, count in CONCEPT_ROWS.items():
        for name in trained:
            splits[split] += [unique(lambda n=name: concept_row(rng, n, "template"), seen)
                              for _ in range(count)]  # fmt: skip
    secrets = [n for n in trained if CONCEPTS[n][0] == "confidential"]

    def mixed() -> Row:
        name, lang = rng.choice(secrets), "zh" if rng.random() < CONCEPT_ZH_SHARE else "en"
        return Row(mix(rng, name, lang), "confidential", "mixed", lang, False)

    for split, count in MIXED_ROWS.items():
        splits[split] += [unique(mixed, seen) for _ in range(count)]


def unique(make, seen: set[str]) -> Row:
    """A row from `make` whose folded text is new and whose card numbers are truthful."""
    for _ in range(1000):
        row = make()
        key = normalise(row.text)
        if key not in seen and acceptable(row):
            seen.add(key)
            return row
    raise RuntimeError(f"category {row.category}: cannot find a new unique prompt")


def normalise(text: str) -> str:
    """Disjointness is checked on case/space-folded text, not just byte-equal text."""
    return re.sub(r"\s+", " ", text).strip().lower()


def write(splits: dict[str, list[Row]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        body = "".join(row.to_json() + "\n" for row in rows)
        (out / f"{split}.jsonl").write_text(body, encoding="utf-8")


CATEGORY_NAMES = {c.name for c in categories()}


def stats_table(splits: dict[str, list[Row]]) -> str:
    """Markdown counts per split x category x language, as pasted into README.md."""
    label_of = {r.category: r.label for rows in splits.values() for r in rows}
    buried = sorted(n for n in label_of if n not in CATEGORY_NAMES and n not in CONCEPTS)
    names = [c.name for c in categories()] + list(CONCEPTS) + buried
    head = "| category | label | " + " | ".join(f"{s} en/zh" for s in splits) + " |"
    lines = [head, "|" + "---|" * (2 + len(splits))]
    per = {s: Counter((r.category, r.lang) for r in rows) for s, rows in splits.items()}
    for name in names:
        cells = [f"{per[s][name, 'en']}/{per[s][name, 'zh']}" for s in splits]
        lines.append(f"| {name} | {label_of[name]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| split | subset | rows | confidential | public | en | zh |")
    lines.append("|---|---|---|---|---|---|---|")
    for s, rows in splits.items():
        for subset in sorted({r.subset for r in rows}, key=SUBSETS.index):
            part = [r for r in rows if r.subset == subset]
            lab, lang = Counter(r.label for r in part), Counter(r.lang for r in part)
            lines.append(
                f"| {s} | {subset} | {len(part)} | {lab['confidential']} | {lab['public']} | "
                f"{lang['en']} | {lang['zh']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the JSONL files")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--stats", action="store_true", help="print the counts table")
    args = parser.parse_args()
    splits = generate(args.seed)
    write(splits, args.out)
    if args.stats:
        print(stats_table(splits))


if __name__ == "__main__":
    main()
