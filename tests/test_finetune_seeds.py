"""benchmarks/finetune_seeds.py: recipe overrides are validated like a file, and each seed
is a fine-tune of its own whose figures are summarised per column."""

from __future__ import annotations

import pytest

from benchmarks import finetune_seeds
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.target import load_target
from tests.fixtures.recipes import write_recipe


@pytest.fixture
def tiny_recipe(tmp_path, tiny_bert_dir):
    return load_recipe(write_recipe(tmp_path / "recipe", tiny_bert_dir))


def test_overrides_set_the_seed_and_dotted_fields(tiny_recipe):
    changed = finetune_seeds.with_overrides(
        tiny_recipe, 11, ["training.epochs=2", "lora.target_modules=[query]"]
    )
    assert changed.training.seed == 11 and changed.training.epochs == 2
    assert changed.lora.target_modules == ["query"]
    assert changed.data_path("train") == tiny_recipe.data_path("train")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochs", "expected dotted.key=value"),
        ("nothing.here=1", "the recipe has no 'nothing'"),
        ("training.epochs=many", "training.epochs"),
        ("training.bogus=1", "training.bogus"),
    ],
)
def test_a_bad_override_is_one_line_naming_it(tiny_recipe, override, message):
    with pytest.raises(SystemExit, match=message.replace(".", r"\.")):
        finetune_seeds.with_overrides(tiny_recipe, 1, [override])


def test_each_seed_trains_and_the_spread_covers_them(tiny_recipe, tmp_path):
    seeds, rows, keys = [3, 4], [], set()
    for seed in seeds:
        result = run_build(
            finetune_seeds.with_overrides(tiny_recipe, seed, []), load_target("cpu"),
            out_root=tmp_path / "dist", cache_root=tmp_path / "cache", until="finetune",
        )  # fmt: skip
        keys.add(result.stages[-1].key)
        rows.append(finetune_seeds.figures(result.stages[-1].metrics))
    assert len(keys) == 2  # not one cached fine-tune read twice
    thresholds = [r["threshold"] for r in rows]
    low, mean, high = finetune_seeds.spread(rows)["threshold"]
    assert (low, high) == (min(thresholds), max(thresholds))
    assert mean == pytest.approx(sum(thresholds) / 2)
    table = finetune_seeds.render(seeds, rows).splitlines()
    assert [line.split()[0] for line in table[1:]] == ["3", "4", "min", "mean", "max"]
