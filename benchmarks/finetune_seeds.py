"""A recipe's fine-tune over several seeds: the spread a data or training change must beat.

One seed's figures are not a verdict: on the default recipe two seeds differ by 0.02 in
out-of-template AUC and 4 points of hard-negative false alarms
(docs/decisions/005-batch-invariant-cpu-int8.md, "What a seed moves"). This runs the
finetune stage once per seed, through the build's stage cache (a seed already trained costs
nothing), with optional recipe overrides, and prints per seed and as min / mean / max: the
threshold, ROC AUC per eval subset and language, recall and precision at the threshold, and
the hard-negative false-alarm rate. Runs one after another: each uses the recipe's threads.

    .venv/bin/python benchmarks/finetune_seeds.py --seeds 42 43 44 \\
        [--set training.vocabulary.windows=1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT
from pipeline.progress import RichReporter
from pipeline.recipe import Recipe, load_recipe
from pipeline.runner import run_build
from pipeline.stage import StageResult
from pipeline.target import Target, load_target

COLUMNS = (
    ("threshold", ("threshold",)),
    ("T auc en", ("subsets", "template", "en", "auc")),
    ("T auc zh", ("subsets", "template", "zh", "auc")),
    ("OOT auc", ("subsets", "out_of_template", "all", "auc")),
    ("OOT auc en", ("subsets", "out_of_template", "en", "auc")),
    ("OOT auc zh", ("subsets", "out_of_template", "zh", "auc")),
    ("OOT R", ("subsets", "out_of_template", "all", "recall")),
    ("OOT P", ("subsets", "out_of_template", "all", "precision")),
    ("HN FA", ("subsets", "hard_negative", "all", "false_alarm_rate")),
)


def with_overrides(recipe: Recipe, seed: int, overrides: list[str]) -> Recipe:
    """`recipe` with `training.seed` and each `dotted.key=value` (value read as YAML) set,
    validated as a file would be."""
    data = recipe.model_dump(mode="json")
    for item in [f"training.seed={seed}", *overrides]:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SystemExit(f"--set {item!r}: the recipe has no {'.'.join(parents)!r}")
        node[leaf] = yaml.safe_load(value)
    try:
        changed = Recipe.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise SystemExit(f"--set: {where}: {error['msg']}") from None
    changed._path = recipe.path
    return changed


def figures(metrics: dict) -> dict[str, float | None]:
    """The COLUMNS of one finetune stage's metrics (None where a subset lacks a figure)."""
    row = {}
    for name, path in COLUMNS:
        value = metrics
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        row[name] = value
    return row


def spread(rows: list[dict]) -> dict[str, tuple[float, float, float]]:
    """(min, mean, max) per column over the seeds that have it."""
    out = {}
    for name, _ in COLUMNS:
        values = [r[name] for r in rows if r[name] is not None]
        if values:
            out[name] = (min(values), statistics.fmean(values), max(values))
    return out


def render(seeds: list[int], rows: list[dict]) -> str:
    """One line per seed, then min / mean / max ("-" where a figure is missing)."""
    names = [name for name, _ in COLUMNS]
    summary = spread(rows)
    table = [(str(seed), [row[n] for n in names]) for seed, row in zip(seeds, rows, strict=True)]
    for label, index in (("min", 0), ("mean", 1), ("max", 2)):
        table.append((label, [summary[n][index] if n in summary else None for n in names]))
    lines = ["seed    " + "".join(f"{n:>12}" for n in names)]
    for label, values in table:
        cells = "".join(f"{'-':>12}" if v is None else f"{v:12.3f}" for v in values)
        lines.append(f"{label:<8}{cells}")
    return "\n".join(lines)


def recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """--recipe, --target, --set and --cache: which fine-tune, and where its cache is."""
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/sensitivity-minilm.yaml")
    parser.add_argument("--target", default="cpu")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="recipe override, e.g. training.epochs=2",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/edgepack")


def finetuned(recipe: Recipe, target: Target, cache: Path) -> StageResult:
    """The recipe's finetune stage, trained or read from the stage cache (quietly)."""
    reporter = RichReporter(Console(stderr=True), quiet=True)
    with tempfile.TemporaryDirectory(prefix="edgepack-finetune-") as out:
        result = run_build(
            recipe, target, out_root=Path(out), cache_root=cache, until="finetune",
            reporter=reporter,
        )  # fmt: skip
    return result.stages[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    recipe_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    recipe, target = load_recipe(args.recipe), load_target(args.target)
    rows = []
    for seed in args.seeds:
        stage = finetuned(with_overrides(recipe, seed, args.overrides), target, args.cache)
        rows.append(figures(stage.metrics))
    print(render(args.seeds, rows))
    if args.json:
        found = {"seeds": args.seeds, "overrides": args.overrides, "rows": rows}
        args.json.write_text(json.dumps(found | {"spread": spread(rows)}, indent=2))


if __name__ == "__main__":
    main()
