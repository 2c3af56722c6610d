"""Topics in the router: a window whose pooled embedding is as close to a topic's example
as the topic's threshold makes the request confidential with `topic:NAME`; a model
without the `embedding` output fails the configuration closed and says why."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.pooling import add_pooled_output
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier, build_classifier, model_problem

EXAMPLE = "the merger of the robotics and sensing divisions next quarter"


@pytest.fixture(scope="module")
def pooled_dir(tiny_classifier_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pooled")
    for name in ("model.int8.onnx", "tokenizer.json", "config.json"):
        shutil.copy(tiny_classifier_dir / name, folder / name)
    add_pooled_output(folder / "model.int8.onnx")
    return folder


def _config(folder: Path, examples: list[str], threshold: float = 0.999) -> ClassifierConfig:
    return ClassifierConfig.model_validate({
        "model": {"path": str(folder / "model.int8.onnx"), "threshold": 0.9999},  # never fires
        "sensitivity": {"topics": [{"name": "reorg", "examples": examples,
                                    "threshold": threshold}]},
    })  # fmt: skip


def _reasons(classifier: Classifier, texts: list[str]) -> list[tuple[str, ...]]:
    async def run() -> list[tuple[str, ...]]:
        try:
            return [(await classifier.classify([t])).reasons for t in texts]
        finally:
            classifier.close()

    return asyncio.run(run())


def test_a_window_on_the_topic_fires_by_name_and_others_do_not(pooled_dir):
    classifier = build_classifier(_config(pooled_dir, [EXAMPLE]), RouterMetrics())
    assert classifier.model_error is None
    on, off = _reasons(classifier, [EXAMPLE.upper(), "bake the bread at two hundred degrees"])
    assert on == ("topic:reorg",)
    assert off == ()


def test_a_topic_still_fires_when_the_window_comes_from_the_score_cache(pooled_dir):
    classifier = build_classifier(_config(pooled_dir, [EXAMPLE]), RouterMetrics())
    first, again = _reasons(classifier, [EXAMPLE, EXAMPLE])
    assert first == again == ("topic:reorg",)
    assert len(classifier.score_cache) >= 1 and classifier.batcher.texts == 1  # read once


words = st.lists(st.sampled_from(["plan", "merger", "team", "budget", "quarter", "office",
                                  "launch", "secret", "division", "robot"]),
                 min_size=2, max_size=8).map(" ".join)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(words, st.booleans(), st.booleans())
def test_an_example_fires_however_it_is_cased_or_widened(pooled_dir, text, upper, wide):
    shown = text.upper() if upper else text
    if wide:  # full-width letters: NFKC makes them the example again
        shown = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c != " " else c for c in shown)
    classifier = build_classifier(_config(pooled_dir, [text, EXAMPLE]), RouterMetrics())
    assert _reasons(classifier, [shown]) == [("topic:reorg",)]


def test_a_model_without_the_embedding_output_is_refused_naming_it(tiny_classifier_dir):
    config = _config(tiny_classifier_dir, [EXAMPLE])
    assert "embedding" in (model_problem(config) or "")
    classifier = build_classifier(config, RouterMetrics())
    assert "embedding" in (classifier.model_error or "")
    assert _reasons(classifier, ["hello"]) == [("classifier_error",)]  # fails closed


def test_a_topic_needs_a_threshold_in_the_router(pooled_dir):
    with pytest.raises(ValueError, match="reorg: no threshold"):
        ClassifierConfig.model_validate({
            "model": {"path": str(pooled_dir / "model.int8.onnx")},
            "sensitivity": {"topics": [{"name": "reorg", "examples": [EXAMPLE]}]},
        })  # fmt: skip
