"""The operating point: the threshold is chosen for recall first on eval, travels with the
model (config.json through the export) into router.yaml, and is reported with precision.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline import operating_point
from pipeline.data import Example
from pipeline.deploy import router_config
from pipeline.deploy.spec import DeployConfig
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stages import export, finetune
from pipeline.target import load_target
from tests.fixtures.recipes import write_recipe
from tests.fixtures.tiny_model import make_tiny_model

SCORES = st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60)


@given(rows=SCORES, min_recall=st.floats(0.5, 1.0))
@example(rows=[(0.0, True), (1.0, True)], min_recall=0.5000000000000001)
def test_threshold_keeps_the_recall_and_is_the_highest_that_does(rows, min_recall):
    scores, positive = [s for s, _ in rows], [p for _, p in rows]
    threshold = operating_point.choose(scores, positive, min_recall)
    assert operating_point.FLOOR <= threshold <= operating_point.CEILING
    caught = [s for s, p in rows if p]
    if not caught:
        return
    recall = sum(s >= threshold for s in caught) / len(caught)
    assert recall >= min_recall or threshold == operating_point.FLOOR
    need = operating_point.needed(min_recall, len(caught))
    if threshold < operating_point.CEILING and threshold > operating_point.FLOOR:
        # any threshold above the needed positive's score would lose it
        assert sorted(caught, reverse=True)[need - 1] >= threshold


def test_the_needed_count_is_the_fewest_with_the_recall():
    assert operating_point.needed(0.5000000000000001, 2) == 2  # the property's example
    assert operating_point.needed(0.95, 20) == 19
    for n in range(1, 200):
        for min_recall in (0.5, 0.9, 0.95, 0.98, 0.99, 1.0, 0.5000000000000001):
            k = operating_point.needed(min_recall, n)
            assert k / n >= min_recall and (k == 1 or (k - 1) / n < min_recall)


def test_report_splits_subsets_and_languages_and_counts_false_alarms():
    examples = [
        Example("a", "confidential", "template", "en"),
        Example("b", "public", "template", "zh"),
        Example("c", "public", "hard_negative", "en"),
        Example("d", "public", "hard_negative", "zh"),
    ]
    labels = ["public", "confidential"]
    report = operating_point.report([0.9, 0.1, 0.7, 0.2], examples, labels, "confidential", 0.5)
    assert set(report) == {"template", "hard_negative"}
    assert set(report["template"]) == {"all", "en", "zh"}
    assert report["template"]["all"]["recall"] == 1.0
    assert report["hard_negative"]["all"]["false_alarm_rate"] == 0.5
    assert report["hard_negative"]["zh"]["false_alarm_rate"] == 0.0
    assert report["template"]["all"]["auc"] == 1.0  # ranked apart, whatever the threshold
    assert "auc" not in report["hard_negative"]["all"]  # one label only: no ranking to judge


def test_auc_counts_the_pairs_ranked_right():
    rows = (("a", "confidential"), ("b", "confidential"), ("c", "public"), ("d", "public"))
    examples = [Example(t, label, "template", "en") for t, label in rows]
    labels = ["public", "confidential"]
    # confidential 0.9 and 0.3, public 0.6 and 0.1: 3 of the 4 pairs ranked right
    report = operating_point.report([0.9, 0.3, 0.6, 0.1], examples, labels, "confidential", 0.5)
    assert report["template"]["all"]["auc"] == 0.75


def test_router_yaml_takes_the_operating_point_unless_the_recipe_overrides_it():
    base = {"image": "r:1", "onprem": {"upstreams": [{"name": "a", "url": "http://a:1"}]},
            "sagemaker": {"endpoint": "e", "region": "eu-west-1"}}  # fmt: skip
    built = router_config.router_config(
        DeployConfig(**base), positive_label="confidential", max_length=128, threshold=0.23
    )
    assert built["classifier"]["model"]["threshold"] == 0.23
    overridden = router_config.router_config(
        DeployConfig(**base, threshold=0.4), positive_label="confidential", max_length=128,
        threshold=0.23,
    )  # fmt: skip
    assert overridden["classifier"]["model"]["threshold"] == 0.4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("operating-point")
    make_tiny_model(root / "model")
    recipe = write_recipe(root / "recipe", root / "model",
                          eval={"metric": "accuracy", "min_recall": 0.9})  # fmt: skip
    return run_build(load_recipe(recipe), load_target("cpu"), out_root=root / "dist",
                     cache_root=root / "cache", stages=[finetune.STAGE, export.STAGE])  # fmt: skip


def test_the_threshold_reaches_the_exported_model_and_the_metrics(built):
    metrics = json.loads((built.dist / "metrics.json").read_text())["finetune"]
    threshold = metrics["threshold"]
    assert operating_point.read(built.dist / "onnx") == threshold
    assert metrics["min_recall"] == 0.9
    assert metrics["fp32"]["recall"] >= 0.9 or threshold == operating_point.FLOOR
    assert {"precision", "recall", "false_alarm_rate"} <= metrics["subsets"]["eval"]["all"].keys()
