"""Where a fine-tune's errors are: eval's rows per subset, category and language, wrong at
the stage's threshold, with the most confident errors quoted.

A figure per subset says how much is wrong, not what: the Chinese false alarms of the
default recipe turned out to be a handful of sentence kinds (commit hashes and order numbers
in Chinese, privacy-law questions written as an e-mail to a named colleague), which no
aggregate shows. This trains (or reads from the stage cache) one seed's fine-tune, scores
the eval split with the stage's own window scoring, and prints per group the rows, the
errors and the mean score, then the `--quote` highest-scoring false alarms and
lowest-scoring misses of each language. It prints eval texts: run it on data you may read.

    .venv/bin/python benchmarks/eval_errors.py [--seed 42] [--set KEY=VALUE] [--quote 10]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.finetune_seeds import finetuned, recipe_arguments, with_overrides
from pipeline.data import load_split
from pipeline.recipe import Recipe, load_recipe
from pipeline.stages.finetune import encode, text_scores
from pipeline.target import load_target


@dataclass(frozen=True)
class Scored:
    text: str
    confidential: bool
    subset: str
    category: str
    lang: str
    score: float

    def wrong(self, threshold: float) -> bool:
        return (self.score >= threshold) != self.confidential


def score_eval(recipe: Recipe, model_dir: Path) -> list[Scored]:
    """Each eval row's score as the finetune stage computes it (its highest window)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    examples = load_split(recipe, "eval")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    data = encode(tokenizer, examples, recipe.labels, recipe.training.max_length)
    scores = text_scores(model, data, len(examples), recipe, tokenizer.pad_token_id or 0)
    return [
        Scored(e.text, e.label == recipe.positive_label, e.subset or "template", e.category,
               e.lang, s)
        for e, s in zip(examples, scores, strict=True)
    ]  # fmt: skip


def groups(rows: list[Scored], threshold: float) -> list[tuple[tuple, int, int, float]]:
    """(subset, category, lang, label) → rows, errors, mean score; groups with errors only."""
    by: dict[tuple, list[Scored]] = defaultdict(list)
    for row in rows:
        label = "confidential" if row.confidential else "public"
        by[(row.subset, row.category, row.lang, label)].append(row)
    table = []
    for key in sorted(by):
        members = by[key]
        errors = sum(r.wrong(threshold) for r in members)
        if errors:
            table.append((key, len(members), errors, sum(r.score for r in members) / len(members)))
    return table


def worst(rows: list[Scored], threshold: float, lang: str, count: int) -> list[Scored]:
    """The highest-scoring false alarms and the lowest-scoring misses of one language."""
    wrong = [r for r in rows if r.lang == lang and r.wrong(threshold)]
    alarms = sorted((r for r in wrong if not r.confidential), key=lambda r: -r.score)
    misses = sorted((r for r in wrong if r.confidential), key=lambda r: r.score)
    return alarms[:count] + misses[:count]


ROW = "{:<17} {:<29} {:<5} {:<13} {:>5} {:>6} {:>11}"


def render(rows: list[Scored], threshold: float, quote: int) -> str:
    heading = ROW.format("subset", "category", "lang", "label", "rows", "wrong", "mean score")
    lines = [f"threshold {threshold:.4f}", heading]
    for (subset, category, lang, label), n, errors, mean in groups(rows, threshold):
        lines.append(ROW.format(subset, category, lang, label, n, errors, f"{mean:.3f}"))
    for lang in sorted({r.lang for r in rows}):
        for r in worst(rows, threshold, lang, quote):
            kind = "miss " if r.confidential else "alarm"
            excerpt = " ".join(r.text.split())[:140]
            lines.append(f"{kind} {lang:<3} {r.score:.3f} {r.category}: {excerpt}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    recipe_arguments(parser)
    parser.add_argument("--seed", type=int, help="default: the recipe's")
    parser.add_argument("--quote", type=int, default=10, help="errors quoted per language")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    seed = recipe.training.seed if args.seed is None else args.seed
    recipe = with_overrides(recipe, seed, args.overrides)
    stage = finetuned(recipe, load_target(args.target), args.cache)
    rows = score_eval(recipe, stage.path / "_merged")
    print(render(rows, stage.metrics["threshold"], args.quote))


if __name__ == "__main__":
    main()
