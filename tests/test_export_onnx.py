"""finetune + export on a tiny random BERT: real peft, real optimum export, real ORT.

One module-scoped cache holds the fine-tuned tiny model, so each test only pays for the
export it checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stages import export, finetune
from pipeline.target import load_target
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC, write_recipe
from tests.fixtures.tiny_model import make_tiny_model

STAGES = [finetune.STAGE, export.STAGE]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_bert_dir) -> Path:
    root = tmp_path_factory.mktemp("export")
    shutil.copytree(tiny_bert_dir, root / "model")
    return root


def build(workdir: Path, target: str, recipe_name: str = "tiny.yaml", **overrides):
    recipe = write_recipe(workdir / "recipe", workdir / "model", name=recipe_name, **overrides)
    return run_build(
        load_recipe(recipe),
        load_target(target),
        out_root=workdir / "dist",
        cache_root=workdir / "cache",
        stages=STAGES,
    )


def onnx_logits(model_path: Path, tokenizer_dir: Path, texts: list[str]) -> np.ndarray:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    batch = tokenizer(texts, padding=True, return_tensors="np")
    return session.run(["logits"], {k: v.astype(np.int64) for k, v in batch.items()})[0]


def torch_logits(merged: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    with torch.inference_mode():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()


def test_outputs_and_onnx_matches_pytorch(workdir):
    result = build(workdir, "cpu")
    assert result.ran == ["finetune", "export"]
    dist = result.dist
    for name in ("onnx/model.onnx", "onnx/config.json", "onnx/tokenizer.json",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "manifest.json", "metrics.json"):  # fmt: skip
        assert (dist / name).is_file(), name
    assert not (dist / "_merged").exists()
    config = json.loads((dist / "onnx" / "config.json").read_text())
    assert config["id2label"] == {"0": "public", "1": "confidential"}
    adapter = json.loads((dist / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["base_model_name_or_path"] == str(workdir / "model")

    texts = [*PUBLIC[:3], *CONFIDENTIAL[:3], "short", "a much longer prompt " * 12]
    merged = result.stages[0].path / "_merged"
    got = onnx_logits(dist / "onnx" / "model.onnx", dist / "onnx", texts)
    want = torch_logits(merged, texts)
    assert got.shape == (len(texts), 2)
    assert np.abs(got - want).max() < 1e-4
    metrics = json.loads((dist / "metrics.json").read_text())
    assert metrics["export"]["max_abs_diff"] <= metrics["export"]["atol"]
    assert metrics["export"]["validated_on"] > 0
    assert set(metrics["finetune"]["fp32"]) == {"accuracy", "precision", "recall", "f1", "n"}


def test_dynamic_axes_and_input_names(workdir):
    import onnx

    dist = build(workdir, "cpu").dist
    graph = onnx.load(str(dist / "onnx" / "model.onnx")).graph
    inputs = {i.name: i for i in graph.input}
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for tensor in inputs.values():
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = [d.dim_param for d in tensor.type.tensor_type.shape.dim]
        assert dims == ["batch_size", "sequence_length"]
    (logits,) = graph.output
    assert logits.name == "logits"
    assert logits.type.tensor_type.shape.dim[0].dim_param == "batch_size"


@pytest.mark.parametrize(("target", "want"), [("cpu", 18), ("jetson-xavier", 17)])
def test_opset_is_capped_by_the_target(workdir, target, want):
    import onnx

    result = build(workdir, target, recipe_name="opset18.yaml",
                   export={"opset": 18, "atol": 0.0001})  # fmt: skip
    model = onnx.load(str(result.dist / "onnx" / "model.onnx"), load_external_data=False)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == want
    assert json.loads((result.dist / "metrics.json").read_text())["export"]["opset"] == want


def test_target_change_reuses_finetune(workdir):
    build(workdir, "cpu")
    result = build(workdir, "jetson")
    assert "finetune" not in result.ran
    assert result.dist.name == "tiny-jetson-orin"


def test_validation_detects_a_different_model(workdir):
    """The check the stage relies on really compares: another model's logits differ."""
    dist = build(workdir, "cpu").dist
    other = make_tiny_model(workdir / "other-model", seed=1)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(dist / "onnx").save_pretrained(other)
    diff = export.max_abs_diff(other, dist / "onnx" / "model.onnx", PUBLIC[:4], 32)
    assert diff > 1e-3


def test_finetune_is_deterministic_for_a_seed(workdir):
    first = build(workdir, "cpu", recipe_name="seeded.yaml")
    weights = (first.dist / "adapter" / "adapter_model.safetensors").read_bytes()
    recipe = load_recipe(workdir / "recipe" / "seeded.yaml")
    again = run_build(recipe, load_target("cpu"), out_root=workdir / "dist2",
                      cache_root=workdir / "cache", stages=STAGES[:1], force=True)  # fmt: skip
    assert again.ran == ["finetune"]
    assert (again.dist / "adapter" / "adapter_model.safetensors").read_bytes() == weights
    assert again.stages[0].metrics["fp32"] == first.stages[0].metrics["fp32"]
