"""export for chat recipes: an ONNX decoder with KV cache whose greedy tokens equal
PyTorch's on the eval prompts, and a check that does fail on a model that differs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pipeline.chat.decode import OnnxDecoder
from pipeline.chat.recipe import load_build_recipe
from pipeline.runner import run_build
from pipeline.stages import chat_export, chat_finetune
from pipeline.target import load_target
from tests.fixtures.tiny_chat import write_chat_recipe


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def exported(request, tmp_path_factory, tiny_chat_models):
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    recipe = load_build_recipe(write_chat_recipe(root, tiny_chat_models[request.param]))
    return recipe, run_build(recipe, load_target("jetson-xavier"), out_root=root / "dist",
                             cache_root=root / "cache",
                             stages=[chat_finetune.STAGE, chat_export.STAGE])  # fmt: skip


def test_onnx_greedy_tokens_equal_pytorch_on_every_eval_prompt(exported):
    recipe, build = exported
    metrics = build.stages[1].metrics
    assert metrics["opset"] == 17  # the recipe's 18, capped by Xavier's TensorRT 8.5
    equal = metrics["greedy_equal"]  # replies may end (EOS) before new_tokens
    assert equal["prompts"] == recipe.eval.prompts
    assert recipe.eval.prompts <= equal["tokens"] <= recipe.eval.prompts * recipe.eval.new_tokens
    decoder = OnnxDecoder(build.dist / "onnx" / "model.onnx")
    assert len(decoder.pasts) == 2 * 2  # key and value of both decoder blocks
    assert (build.dist / "onnx" / "chat_template.jinja").is_file()


def test_incremental_decoding_matches_a_full_pass(exported):
    _recipe, build = exported
    decoder = OnnxDecoder(build.dist / "onnx" / "model.onnx")
    ids = [10, 20, 30, 40, 50, 60]
    full = decoder.logits(ids)
    _logits, past = decoder.step(ids[:4], decoder.empty_past())
    tail, _past = decoder.step(ids[4:], past)
    np.testing.assert_allclose(tail, full[4:], atol=1e-4)


def test_a_model_that_decodes_differently_fails_the_check(exported, tmp_path):
    _recipe, build = exported
    model = onnx.load(str(build.dist / "onnx" / "model.onnx"))
    vocab = OnnxDecoder(build.dist / "onnx" / "model.onnx").logits([1]).shape[-1]
    head = next(i for i in model.graph.initializer if list(i.dims) == [256, vocab])  # lm_head
    weight = numpy_helper.to_array(head).copy()
    weight[..., 7] += 100.0  # token 7 now wins every argmax
    head.CopyFrom(numpy_helper.from_array(weight, head.name))
    onnx.save(model, str(tmp_path / "model.onnx"))
    merged = build.stages[0].path / "_merged"
    prompts = [[10, 20, 30]]
    compared, mismatch = chat_export.compare_greedy(merged, tmp_path / "model.onnx", prompts, 4)
    assert compared == 0 and mismatch is not None and mismatch[3] == 7 and mismatch[2] != 7
