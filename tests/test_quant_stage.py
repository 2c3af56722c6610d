"""The quantize stage in a real build (tiny random BERT, real optimum export): both models
land in dist/ with their metrics, the Q/DQ model passes the target's lint, a second build
is cached, and an impossible budget fails the build with the table and writes no dist/.
"""

from __future__ import annotations

import json

import onnx
import pytest

from pipeline.errors import StageFailed
from pipeline.quant import cpu_int8
from pipeline.quant.lint import lint_file
from pipeline.quant.smoothing import SUFFIX
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stages.quantize import STAGE
from pipeline.target import load_target
from tests.fixtures.packaging import tiny_export_stage
from tests.fixtures.recipes import write_recipe


def build(tmp_path, onnx_dir, budget: float, target: str = "jetson-xavier", **quantize):
    recipe = load_recipe(
        write_recipe(tmp_path, tmp_path / "unused-model",
                     eval={"metric": "accuracy", "int8_budget": budget},
                     quantize={"samples": 8, **quantize})
    )  # fmt: skip
    return run_build(
        recipe,
        load_target(target),
        out_root=tmp_path / "dist",
        cache_root=tmp_path / "cache",
        stages=[tiny_export_stage(onnx_dir), STAGE],
    )


def test_build_writes_both_models_and_is_cached(tmp_path, tiny_export, caplog):
    result = build(tmp_path, tiny_export, budget=100.0)
    assert "pre-processing" not in caplog.text  # quantize_dynamic's advice, once per call
    onnx_dir = result.dist / "onnx"
    qdq, int8, fp32 = (onnx_dir / f"model.{k}onnx" for k in ("qdq.", "int8.", ""))
    assert qdq.is_file() and int8.is_file()
    outputs = [o.name for o in onnx.load(str(int8)).graph.output]
    assert outputs == ["logits", "embedding"]  # the router's topics read the pooled output
    assert lint_file(qdq, load_target("jetson-xavier")) == []
    ops = {n.op_type for n in onnx.load(str(qdq)).graph.node}
    assert "LayerNormalization" not in ops and "QuantizeLinear" in ops  # TensorRT 8.5 form
    metrics = json.loads((result.dist / "metrics.json").read_text())["quantize"]
    assert metrics["chosen"] in metrics["candidates"]
    assert {"fp32", "int8", "qdq"} <= metrics.keys()
    assert metrics["sizes"]["int8"] == int8.stat().st_size < fp32.stat().st_size
    assert metrics["timing"]["threads"] >= 1
    assert metrics["calibration"] == {
        "method": "percentile", "samples": 8, "percentile": 99.999, "layernorm_expanded": True,
        "smoothing": None, "smoothed_sites": 0,
    }  # fmt: skip
    assert not any(p.name == "_work" for p in result.stages[-1].path.iterdir())

    again = build(tmp_path, tiny_export, budget=100.0)
    assert again.ran == []  # calibration runs once per cache key


def test_impossible_budget_fails_with_table_and_no_dist(tmp_path, tiny_export):
    with pytest.raises(StageFailed) as failure:
        build(tmp_path, tiny_export, budget=-100.0, target="jetson-orin")
    message = str(failure.value)
    assert message.startswith("stage quantize: INT8 accuracy gate failed for qdq")
    assert "eval.int8_budget of -100.0" in message
    lines = message.splitlines()
    assert "kept in float" in lines[1]
    assert len(lines) >= 4 and all(line.rstrip().endswith("FAIL") for line in lines[2:])
    assert lines[3].split()[1] != "-"  # retried with the most sensitive unit in float
    assert failure.value.code == 1
    assert not (tmp_path / "dist").exists()
    assert not (tmp_path / "cache" / "stages" / "quantize").exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_smoothing_option_reaches_the_qdq_model(tmp_path, tiny_export):
    """Smoothed before LayerNorm is expanded for TensorRT 8.5: still lint-clean, the copies
    expanded like every other LayerNorm, and reported in metrics.json."""
    result = build(tmp_path, tiny_export, budget=100.0, smoothing=0.5)
    qdq = result.dist / "onnx" / "model.qdq.onnx"
    assert lint_file(qdq, load_target("jetson-xavier")) == []
    metrics = json.loads((result.dist / "metrics.json").read_text())["quantize"]
    assert metrics["calibration"]["smoothing"] == 0.5
    assert metrics["calibration"]["smoothed_sites"] == 4 + 4  # see test_quant_smoothing
    graph = onnx.load(str(qdq)).graph
    assert sum(n.op_type == "Mul" and n.name.endswith(SUFFIX) for n in graph.node) == 4
    names = {t.name for t in graph.initializer}
    scaled = [n for n in names if n.endswith((f"{SUFFIX}/gamma", f"{SUFFIX}/beta"))]
    assert len(scaled) == 2 * 4  # each copy's gamma and beta, read by its expanded ops


def test_a_cpu_model_with_a_dynamic_scale_left_fails_the_build(tmp_path, tiny_export, monkeypatch):
    """Calibrating too few tensors leaves static-fused without some ranges: the build stops
    naming them rather than ship a batch-dependent model."""
    monkeypatch.setattr(cpu_int8, "CALIBRATED_OPS", ("Attention",))
    with pytest.raises(
        StageFailed, match=r"^stage quantize: static-fused: no calibrated range for /bert/"
    ):
        build(tmp_path, tiny_export, budget=100.0, target="cpu")
    assert not (tmp_path / "dist").exists()
