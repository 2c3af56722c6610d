"""quantize for chat recipes: weight-only INT8/INT4 (MatMulNBits) within the recipe's
budget on perplexity and greedy-token agreement; a variant over budget fails the build
before anything reaches dist/."""

from __future__ import annotations

import pytest

from pipeline.chat.decode import OnnxDecoder
from pipeline.chat.recipe import Budget, load_build_recipe
from pipeline.chat.weight_only import agreement, reference
from pipeline.errors import StageFailed
from pipeline.fingerprint import package_version
from pipeline.runner import run_build
from pipeline.stages import chat_export, chat_finetune, chat_quantize
from pipeline.stages.chat_quantize import verdict
from pipeline.target import load_target
from tests.fixtures.tiny_chat import write_chat_recipe

STAGES = [chat_finetune.STAGE, chat_export.STAGE, chat_quantize.STAGE]


def build(root, model_dir, name="chat.yaml", **overrides):
    recipe = load_build_recipe(write_chat_recipe(root, model_dir, name=name, **overrides))
    return run_build(recipe, load_target("cpu"), out_root=root / "dist",
                     cache_root=root / "cache", stages=STAGES)  # fmt: skip


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_chat_models):
    root = tmp_path_factory.mktemp("quantize")
    return root, build(root, tiny_chat_models["qwen2"])


def test_int8_and_int4_stay_within_the_default_budgets(quantized):
    _root, result = quantized
    metrics = result.stages[2].metrics
    int8, int4 = metrics["variants"]["int8"], metrics["variants"]["int4"]
    assert int8["token_agreement"] >= 0.99 and int4["token_agreement"] >= 0.95
    assert abs(int8["perplexity_increase"]) <= 0.02 and int4["perplexity_increase"] <= 0.10
    assert int4["size_ratio"] <= 0.30 and int4["size_bytes"] < int8["size_bytes"]
    for variant in ("int8", "int4"):
        assert (result.dist / "onnx" / f"model.{variant}.onnx").is_file()
    assert package_version("onnx-ir") is not None


def test_agreement_counts_what_the_variant_predicts_alike(quantized):
    _root, result = quantized
    fp32 = OnnxDecoder(result.dist / "onnx" / "model.onnx")
    ref = reference(fp32, [[1, 2, 3], [40, 41]], new_tokens=5)
    assert agreement(fp32, ref) == 1.0
    wrong = type(ref)(ref.prompts, [[(t + 1) % 200 for t in c] for c in ref.continuations])
    assert agreement(fp32, wrong) == 0.0


def test_a_variant_over_budget_fails_and_nothing_reaches_dist(quantized, tiny_chat_models):
    root, _result = quantized
    strict = {"prompts": 4, "new_tokens": 8,
              "int4": {"max_perplexity_increase": 0.0, "min_token_agreement": 1.0}}  # fmt: skip
    recipe = write_chat_recipe(root, tiny_chat_models["qwen2"], name="strict.yaml", eval=strict)
    with pytest.raises(StageFailed, match=r"int4: perplexity \+[0-9.]+% > \+0\.00% allowed"):
        run_build(load_build_recipe(recipe), load_target("cpu"), out_root=root / "strict",
                  cache_root=root / "cache", stages=STAGES)  # fmt: skip
    assert not (root / "strict").exists()


def test_verdict_names_each_figure_over_budget():
    budget = Budget(max_perplexity_increase=0.05, min_token_agreement=0.95)
    assert verdict(10.0, 10.4, 0.96, budget) == []
    assert verdict(10.0, 10.6, 0.9, budget) == [
        "perplexity +6.00% > +5.00% allowed",
        "token agreement 90.00% < 95.00% required",
    ]
    assert verdict(10.0, float("nan"), 1.0, budget)
