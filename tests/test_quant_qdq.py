"""The TensorRT Q/DQ model on a tiny random BERT: symmetric INT8, zero point 0, per-channel
weights along the output axis, Q/DQ on GEMM inputs only (never on a GEMM output or a graph
output), LayerNorm/Softmax/GELU left in float, opset within the target.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from pipeline.quant import calibration, lint, qdq
from pipeline.quant.onnx_eval import load_tokenizer, ort_session
from pipeline.target import load_target
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC

ATTENTION = re.compile(r"attention/self/MatMul(_\d+)?$")


def build_qdq(
    onnx_dir: Path, work: Path, method: str, expand: bool, attention: bool = False
) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    pre = qdq.preprocess(onnx_dir / "model.onnx", work / "pre.onnx")
    nodes = qdq.prepare_for_tensorrt(
        pre, work / "prepared.onnx", expand_layernorm=expand, attention=attention
    )
    cache = calibration.calibrate(
        work / "prepared.onnx", load_tokenizer(onnx_dir), PUBLIC + CONFIDENTIAL, 32, method,
        99.99, qdq.OP_TYPES, work / "calib.json", chunk=4,
    )  # fmt: skip
    method_enum = calibration.calibrate_method(method)
    return qdq.quantize_qdq(work / "prepared.onnx", work / "q.onnx", cache, method_enum, nodes)


@pytest.fixture(scope="module")
def qdq_model(tiny_export, tmp_path_factory) -> onnx.ModelProto:
    path = build_qdq(tiny_export, tmp_path_factory.mktemp("qdq"), "minmax", expand=False)
    return onnx.load(str(path))


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_every_qdq_is_int8_symmetric_with_zero_point_zero(qdq_model):
    inits = _inits(qdq_model)
    qdq_nodes = [n for n in qdq_model.graph.node if n.op_type.endswith("antizeLinear")]
    assert len(qdq_nodes) > 20
    for node in qdq_nodes:
        assert len(node.input) == 3, node.name
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8, node.name
        assert not zero_point.any(), node.name


def test_weights_are_per_channel_along_matmul_output_axis(qdq_model):
    inits = _inits(qdq_model)
    init_protos = {t.name: t for t in qdq_model.graph.initializer}
    consumers = {i: n for n in qdq_model.graph.node for i in n.input}
    checked = 0
    for node in qdq_model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        user = consumers[node.output[0]]
        if user.op_type != "MatMul":
            continue
        weight, scale = init_protos[node.input[0]], inits[node.input[1]]
        assert weight.data_type == TensorProto.INT8
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert axis == 1 and scale.shape == (weight.dims[1],), node.name
        checked += 1
    assert checked == 2 * 6  # 2 layers x (q, k, v, attention out, intermediate, output)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def test_float_ops_and_what_gets_qdq(qdq_model):
    producers = _producers(qdq_model)
    ops = {n.op_type for n in qdq_model.graph.node}
    assert {"LayerNormalization", "Softmax", "Erf"} <= ops
    linear = attention = 0
    for node in qdq_model.graph.node:
        fed = [producers[i].op_type for i in node.input if i in producers]
        if node.op_type in ("LayerNormalization", "Softmax", "Erf"):
            assert "DequantizeLinear" not in fed, node.name  # computed in float
        if ATTENTION.search(node.name):  # Q·Kᵀ, P·V: float with attention=False
            assert "DequantizeLinear" not in fed, node.name
            attention += 1
        elif node.op_type in ("MatMul", "Gemm"):
            assert fed[0] == "DequantizeLinear", node.name  # INT8 input for TensorRT
            linear += 1
    assert (linear, attention) == (2 * 6 + 2, 2 * 2)  # + pooler dense and classifier
    residual = [n for n in qdq_model.graph.node if n.op_type == "Add" and n.name.endswith(
        ("attention/output/Add", "output/Add"))]  # fmt: skip
    assert len(residual) == 4
    for node in residual:  # the skip input quantized, the GEMM side (dense + bias) float
        skip, gemm_side = (producers[i] for i in node.input[::-1])
        assert skip.op_type == "DequantizeLinear", node.name
        assert producers[skip.input[0]].op_type == "QuantizeLinear"
        assert gemm_side.op_type == "Add" and "dense" in gemm_side.name, node.name


def test_no_qdq_on_gemm_or_graph_outputs(qdq_model):
    """TensorRT's placement guide: quantize the inputs of weighted operations, not their
    outputs (a Q after a GEMM splits its fusion; on the logits it rounds the scores)."""
    producers = _producers(qdq_model)
    for node in qdq_model.graph.node:
        if node.op_type == "QuantizeLinear":
            src = producers.get(node.input[0])
            assert src is None or src.op_type not in ("MatMul", "Gemm"), node.name
            if src is not None and src.op_type == "Add":  # a bias Add is a GEMM's output too
                assert not any(
                    producers.get(i) is not None and producers[i].op_type in ("MatMul", "Gemm")
                    for i in src.input
                ), node.name
    for output in qdq_model.graph.output:
        assert producers[output.name].op_type != "DequantizeLinear", output.name
        assert producers[output.name].op_type == "Gemm"  # the classifier, in float out


def test_only_used_opset_domains_are_declared(qdq_model):
    used = {n.domain for n in qdq_model.graph.node} | {""}
    assert {o.domain for o in qdq_model.opset_import} <= used


def test_attention_matmuls_on_request(tiny_export, tmp_path):
    model = onnx.load(str(build_qdq(tiny_export, tmp_path, "minmax", False, attention=True)))
    producers = _producers(model)
    attention = [n for n in model.graph.node if ATTENTION.search(n.name)]
    assert len(attention) == 4  # Q·Kᵀ and P·V, per layer
    for node in attention:
        for tensor in node.input:  # both sides are activations: DQ(Q(x))
            assert producers[tensor].op_type == "DequantizeLinear", node.name
            assert producers[producers[tensor].input[0]].op_type == "QuantizeLinear"


def test_qdq_model_runs_close_to_fp32(tiny_export, qdq_model, tmp_path):
    path = tmp_path / "q.onnx"
    onnx.save(qdq_model, str(path))
    tokenizer = load_tokenizer(tiny_export)
    feeds = dict(tokenizer(PUBLIC[:4], padding=True, return_tensors="np"))
    feeds = {k: v.astype(np.int64) for k, v in feeds.items()}
    ref = ort_session(tiny_export / "model.onnx").run(None, feeds)[0]
    got = ort_session(path).run(None, feeds)[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 0.05 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("target", ["cpu", "a100", "jetson-orin", "jetson-xavier"])
def test_opset_within_each_target_and_lint_clean(tiny_export, tmp_path, target):
    profile = load_target(target)
    expand = bool(
        profile.tensorrt and "LayerNormalization" in lint.unsupported_ops(profile.tensorrt.line)
    )
    model = onnx.load(str(build_qdq(tiny_export, tmp_path, "minmax", expand)))
    assert lint.model_opset(model) <= profile.onnx_max_opset
    assert lint.lint_model(model, profile) == []
    has_ln = any(n.op_type == "LayerNormalization" for n in model.graph.node)
    assert has_ln is not expand


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods(tiny_export, tmp_path, method):
    model = onnx.load(str(build_qdq(tiny_export, tmp_path, method, expand=False)))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) == 10  # one a GEMM input
    assert lint.lint_model(model, load_target("jetson-orin")) == []


def test_sensitivity_units_cover_blocks_and_cross_block_kinds(tiny_export, tmp_path):
    pre = qdq.preprocess(tiny_export / "model.onnx", tmp_path / "pre.onnx")
    nodes = qdq.prepare_for_tensorrt(
        pre, tmp_path / "prepared.onnx", expand_layernorm=False, attention=True
    )
    units = qdq.sensitivity_units(tmp_path / "prepared.onnx", nodes)
    assert {"layer.0", "layer.1", "residual-adds", "attention-matmuls"} <= units.keys()
    assert len(units["residual-adds"]) == 4  # after attention and after the FFN, per layer
    assert len(units["attention-matmuls"]) == 4  # Q·Kᵀ and P·V, per layer
    assert [n.split("/")[-3] for n in units["ffn-down"]] == ["output", "output"]  # 64 → 32
    assert all(n.startswith("/bert/encoder/layer.0/") for n in units["layer.0"])
    assert {n for members in units.values() for n in members} == set(nodes)


def test_float_blocks_counts_encoder_layers_without_int8_gemms(tiny_export, qdq_model):
    assert qdq.float_blocks(qdq_model) == []
    fp32 = onnx.load(str(tiny_export / "model.onnx"))
    assert qdq.float_blocks(fp32) == ["layer.0", "layer.1"]


def test_quantization_error_score_clips_rare_outliers_but_not_signal():
    edges = np.linspace(-100, 100, 2001, dtype=np.float32)
    centers = (edges[:-1] + edges[1:]) / 2
    gaussian = np.round(1e6 * np.exp(-(centers**2) / 2)).astype(np.int64)
    gaussian[-1] += 1  # one outlier at ~100
    assert calibration.clip_round_error(gaussian, edges, 5.0) < calibration.clip_round_error(
        gaussian, edges, 100.0
    )
    uniform = np.ones_like(centers, dtype=np.int64)
    assert calibration.clip_round_error(uniform, edges, 100.0) < calibration.clip_round_error(
        uniform, edges, 50.0
    )
    assert abs(calibration.percentile_threshold(uniform, edges, 50.0) - 50.0) < 0.2


def test_per_tensor_calibration_builds_a_lint_clean_model(tiny_export, tmp_path):
    from onnxruntime.quantization import CalibrationMethod

    pre = qdq.preprocess(tiny_export / "model.onnx", tmp_path / "pre.onnx")
    nodes = qdq.prepare_for_tensorrt(pre, tmp_path / "prepared.onnx", expand_layernorm=False)
    picked = calibration.calibrate_per_tensor(
        tmp_path / "prepared.onnx", load_tokenizer(tiny_export), PUBLIC + CONFIDENTIAL, 32,
        99.99, qdq.OP_TYPES, tmp_path / "calib.json", chunk=4,
    )  # fmt: skip
    assert set(picked.values()) <= {"minmax", "entropy", "percentile"} and len(picked) > 10
    out = qdq.quantize_qdq(
        tmp_path / "prepared.onnx", tmp_path / "q.onnx", tmp_path / "calib.json",
        CalibrationMethod.MinMax, nodes,
    )  # fmt: skip
    assert lint.lint_model(onnx.load(str(out)), load_target("jetson-orin")) == []


def test_calibrating_only_the_nodes_inputs_keeps_their_ranges_and_the_model(tiny_export, tmp_path):
    """Histogramming only what the quantizer reads changes no range it reads, and so no
    byte of the Q/DQ model."""
    pre = qdq.preprocess(tiny_export / "model.onnx", tmp_path / "pre.onnx")
    nodes = qdq.prepare_for_tensorrt(pre, tmp_path / "prepared.onnx", expand_layernorm=False)
    graph = onnx.load(str(tmp_path / "prepared.onnx")).graph
    consts = {t.name for t in graph.initializer}
    wanted = {i for n in graph.node if n.name in set(nodes) for i in n.input if i not in consts}
    paths = {}
    for name, inputs_of in (("all", None), ("narrow", nodes)):
        cache = calibration.calibrate(
            tmp_path / "prepared.onnx", load_tokenizer(tiny_export), PUBLIC + CONFIDENTIAL, 32,
            "percentile", 99.99, qdq.OP_TYPES, tmp_path / f"{name}.json", chunk=4,
            inputs_of=inputs_of,
        )  # fmt: skip
        method = calibration.calibrate_method("percentile")
        model = qdq.quantize_qdq(
            tmp_path / "prepared.onnx", tmp_path / f"{name}.onnx", cache, method, nodes
        )
        paths[name] = (cache, model)
    everything = calibration.load_ranges(paths["all"][0])
    narrow = calibration.load_ranges(paths["narrow"][0])
    assert set(narrow) == wanted and len(everything) > len(narrow)
    assert narrow == {t: everything[t] for t in wanted}
    assert paths["all"][1].read_bytes() == paths["narrow"][1].read_bytes()
