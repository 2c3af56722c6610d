"""A CPU INT8 model gives a prompt the same score alone as in any batch (the router and
Triton batch requests, so a neighbour must never change a route).

The verdict's arithmetic, then the property on the model the quantize stage ships: a tiny
random BERT in a real build, and (slow) the default recipe's model, against batches that
hypothesis composes (neighbours, order, padding to the longest row or to max_length).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.quant.gate import MAX_BATCH_DELTA, compare_scores
from pipeline.quant.onnx_eval import encode, load_tokenizer, ort_session
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stages.quantize import STAGE
from pipeline.target import load_target
from tests.fixtures.packaging import tiny_export_stage
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC, write_recipe

REPO = Path(__file__).resolve().parent.parent
MAX_LENGTH = 128
TEXTS = st.one_of(
    st.sampled_from(PUBLIC + CONFIDENTIAL),
    st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=300
    ),
)


@given(
    alone=st.lists(st.floats(0, 1), min_size=1, max_size=20),
    data=st.data(),
    threshold=st.floats(0.01, 0.99),
)
def test_compare_scores_passes_exactly_small_changes_without_flips(alone, data, threshold):
    delta = data.draw(st.floats(-0.1, 0.1))
    row = data.draw(st.integers(0, len(alone) - 1))
    batched = list(alone)
    batched[row] = min(1.0, max(0.0, alone[row] + delta))
    verdict = compare_scores(alone, [list(alone), batched], threshold)
    flipped = (alone[row] >= threshold) != (batched[row] >= threshold)
    assert verdict.flips == int(flipped)
    assert verdict.max_delta == pytest.approx(abs(batched[row] - alone[row]))
    assert verdict.passed == (abs(batched[row] - alone[row]) <= MAX_BATCH_DELTA and not flipped)


def positive_scores(session, tokenizer, texts: list[str], pad_to: int | None) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    feeds = encode(tokenizer, texts, MAX_LENGTH, names)
    if pad_to is not None:
        width = pad_to - feeds["input_ids"].shape[1]
        feeds = {k: np.pad(v, ((0, 0), (0, width))) for k, v in feeds.items()}
    logits = session.run(None, feeds)[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp[:, 1] / exp.sum(axis=1)


def assert_invariant(model: Path, tokenizer, texts: list[str], pad: bool) -> None:
    session = ort_session(model)
    alone = np.array([positive_scores(session, tokenizer, [t], None)[0] for t in texts])
    batched = positive_scores(session, tokenizer, texts, MAX_LENGTH if pad else None)
    assert float(np.abs(alone - batched).max()) <= MAX_BATCH_DELTA, (texts, alone, batched)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, tiny_export):
    tmp = tmp_path_factory.mktemp("invariance")
    eval_cfg = {"metric": "accuracy", "int8_budget": 100.0}
    recipe = load_recipe(write_recipe(tmp, tmp / "unused-model", eval=eval_cfg))
    stages = [tiny_export_stage(tiny_export), STAGE]
    result = run_build(
        recipe, load_target("cpu"), out_root=tmp / "dist", cache_root=tmp / "cache", stages=stages
    )
    return result.dist


def test_the_stage_reports_every_candidate_and_ships_an_invariant_one(tiny_build):
    metrics = json.loads((tiny_build / "metrics.json").read_text())["quantize"]
    invariance = metrics["batch_invariance"]
    assert invariance["int8"]["passed"] and invariance["int8"]["rows"] > 0
    assert invariance["int8"]["max_delta"] <= MAX_BATCH_DELTA
    assert metrics["candidates"][metrics["chosen"]]["batch_invariance"]["passed"]
    for row in metrics["candidates"].values():
        assert ("speed" in row) == row["batch_invariance"]["passed"]  # the rest are not timed


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(TEXTS, min_size=2, max_size=8), pad=st.booleans())
def test_the_shipped_tiny_int8_model_scores_alone_as_in_a_batch(tiny_build, texts, pad):
    onnx_dir = tiny_build / "onnx"
    assert_invariant(onnx_dir / "model.int8.onnx", load_tokenizer(onnx_dir), texts, pad)


@pytest.fixture(scope="module")
def default_build(tmp_path_factory) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "EDGEPACK_CACHE"}
    out = tmp_path_factory.mktemp("default-build")
    edgepack = Path(sys.executable).parent / "edgepack"
    command = [str(edgepack), "build", "--until", "quantize", "--out", str(out), "--quiet"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "sensitivity-minilm-cpu"


@pytest.mark.slow
def test_the_default_build_rejects_dynamic_int8_for_its_batch_dependence(default_build):
    metrics = json.loads((default_build / "metrics.json").read_text())["quantize"]
    dynamic = metrics["candidates"]["fused-dynamic"]["batch_invariance"]
    assert not dynamic["passed"] and "speed" not in metrics["candidates"]["fused-dynamic"]
    assert metrics["batch_invariance"]["int8"]["passed"]


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), pad=st.booleans())
def test_the_default_int8_model_scores_alone_as_in_a_batch(default_build, data, pad):
    rows = (REPO / "recipes/data/sensitivity/eval.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [
        json.loads(r)["text"]
        for r in data.draw(st.lists(st.sampled_from(rows), min_size=2, max_size=8))
    ]
    onnx_dir = default_build / "onnx"
    assert_invariant(onnx_dir / "model.int8.onnx", load_tokenizer(onnx_dir), texts, pad)
