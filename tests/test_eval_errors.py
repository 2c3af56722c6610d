"""benchmarks/eval_errors.py: it scores eval as the finetune stage did, and its groups and
quotes account for every error at the threshold."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import eval_errors
from pipeline import operating_point
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.target import load_target
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC, write_recipe


def test_scores_reproduce_the_stage_metrics(tmp_path, tiny_bert_dir):
    path = write_recipe(tmp_path / "recipe", tiny_bert_dir)
    rows = [{"text": t, "label": "public", "category": "chat", "lang": "en"} for t in PUBLIC]
    rows += [{"text": t, "label": "confidential", "category": "ids", "lang": "en",
              "subset": "out_of_template"} for t in CONFIDENTIAL]  # fmt: skip
    (tmp_path / "recipe/data/eval.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    recipe = load_recipe(path)
    stage = run_build(
        recipe, load_target("cpu"), out_root=tmp_path / "dist", cache_root=tmp_path / "cache",
        until="finetune",
    ).stages[-1]  # fmt: skip
    scored = eval_errors.score_eval(recipe, stage.path / "_merged")
    expected = [("chat", "template")] * len(PUBLIC) + [("ids", "out_of_template")] * len(
        CONFIDENTIAL
    )
    assert [(s.category, s.subset) for s in scored] == expected
    threshold = stage.metrics["threshold"]
    again = operating_point.metrics_at(
        [s.score for s in scored], [int(s.confidential) for s in scored], 1, threshold
    )
    assert again == pytest.approx(stage.metrics["fp32"])


rows = st.lists(
    st.builds(
        eval_errors.Scored,
        text=st.text(min_size=1, max_size=20),
        confidential=st.booleans(),
        subset=st.sampled_from(["template", "out_of_template"]),
        category=st.sampled_from(["a", "b"]),
        lang=st.sampled_from(["en", "zh"]),
        score=st.floats(0, 1),
    ),
    max_size=40,
)


@given(rows, st.floats(0, 1))
def test_groups_count_every_error_once(scored, threshold):
    table = eval_errors.groups(scored, threshold)
    assert sum(errors for _, _, errors, _ in table) == sum(r.wrong(threshold) for r in scored)
    assert all(0 < errors <= n for _, n, errors, _ in table)


@given(rows, st.floats(0, 1), st.integers(0, 5))
def test_quotes_are_the_most_confident_errors(scored, threshold, count):
    for lang in ("en", "zh"):
        quoted = eval_errors.worst(scored, threshold, lang, count)
        assert all(r.lang == lang and r.wrong(threshold) for r in quoted)
        alarms = [r.score for r in quoted if not r.confidential]
        misses = [r.score for r in quoted if r.confidential]
        assert alarms == sorted(alarms, reverse=True) and misses == sorted(misses)
        left = [r for r in scored if r.lang == lang and r.wrong(threshold) and r not in quoted]
        assert all(r.score <= min(alarms, default=1) for r in left if not r.confidential)
        assert all(r.score >= max(misses, default=0) for r in left if r.confidential)
