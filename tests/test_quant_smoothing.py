"""SmoothQuant-style scale migration on a tiny random BERT: the smoothed FP32 graph computes
what the original does, the MatMuls behind a LayerNorm read a rescaled copy of it whose
channel maxima are flattened, the residual path keeps the original, and the MatMuls no
LayerNorm feeds read their input through a Mul (quantizing the smoothed model for TensorRT:
tests/test_quant_stage.py).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.quant import qdq, smoothing
from pipeline.quant.onnx_eval import load_tokenizer, ort_session
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC

TEXTS = PUBLIC + CONFIDENTIAL


@pytest.fixture(scope="module")
def smoothed(tiny_export, tmp_path_factory):
    """(pre-processed FP32 model, its copy smoothed at the LayerNorms only, how many) with
    α = 0.5."""
    work = tmp_path_factory.mktemp("smooth")
    pre = qdq.preprocess(tiny_export / "model.onnx", work / "pre.onnx")
    tokenizer = load_tokenizer(tiny_export)
    count = smoothing.smooth(
        pre, work / "smoothed.onnx", tokenizer, TEXTS, 32, alpha=0.5, inputs=False
    )
    return pre, work / "smoothed.onnx", count


def _logits(path, tokenizer, texts):
    feeds = dict(tokenizer(texts, padding=True, return_tensors="np"))
    return ort_session(path).run(None, {k: v.astype(np.int64) for k, v in feeds.items()})[0]


def test_smoothed_fp32_graph_gives_the_same_outputs(tiny_export, smoothed):
    pre, smooth_path, _ = smoothed
    tokenizer = load_tokenizer(tiny_export)
    texts = [*TEXTS, "A text the maxima were not measured on, about ship engines."]
    ref, got = _logits(pre, tokenizer, texts), _logits(smooth_path, tokenizer, texts)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_matmuls_behind_layernorms_read_a_rescaled_copy(smoothed):
    pre, smooth_path, count = smoothed
    before, after = onnx.load(str(pre)), onnx.load(str(smooth_path))
    # embeddings → Q/K/V of layer 0, and per layer attention LN → FFN up, output LN → next
    # layer's Q/K/V; the last output LN feeds the pooler through a Gather, not a MatMul
    assert count == 4
    producers = {o: n for n in after.graph.node for o in n.output}
    readers = {}
    for node in after.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    copies = [n for n in after.graph.node if n.name.endswith(smoothing.SUFFIX)]
    assert len(copies) == count
    for copy in copies:
        assert {r.op_type for r in readers[copy.output[0]]} == {"MatMul"}
        original = producers[copy.output[0].removesuffix(smoothing.SUFFIX)]
        assert "Add" in {r.op_type for r in readers[original.output[0]]}  # the residual
    old = {t.name: numpy_helper.to_array(t) for t in before.graph.initializer}
    new = {t.name: numpy_helper.to_array(t) for t in after.graph.initializer}
    weights = [m.input[1] for c in copies for m in readers[c.output[0]]]
    assert len(weights) == 2 * 4  # per layer: query, key, value, intermediate
    for name in weights:  # each row scaled by one positive factor
        ratio = new[name] / old[name]
        assert not np.allclose(ratio, 1.0), name
        assert (ratio > 0).all() and np.allclose(ratio, ratio[:, :1], rtol=1e-5), name


def test_activation_channel_maxima_are_flattened(tiny_export, smoothed):
    """With α = 0.5, the spread of per-channel maxima the MatMuls see shrinks."""
    _, smooth_path, _ = smoothed
    tokenizer = load_tokenizer(tiny_export)
    model = onnx.load(str(smooth_path))
    copies = [n.output[0] for n in model.graph.node if n.name.endswith(smoothing.SUFFIX)]
    originals = [c.removesuffix(smoothing.SUFFIX) for c in copies]
    maxima = smoothing.channel_maxima(smooth_path, tokenizer, TEXTS, 32, copies + originals)
    for copy, original in zip(copies, originals, strict=True):
        spread = maxima[copy].max() / maxima[copy].min()
        assert spread < maxima[original].max() / maxima[original].min(), copy


def test_layernorm_read_only_by_matmuls_is_replaced_by_its_copy(tmp_path):
    """Pre-LN form (LayerNorm → MatMuls only): the original goes with its gamma and beta, and
    the graph still computes the same."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (rng.uniform(0.5, 8.0, 8).astype(np.float32), "gamma"),
        (rng.normal(size=8).astype(np.float32), "beta"),
        (rng.normal(size=(8, 6)).astype(np.float32), "w1"),
        (rng.normal(size=(8, 5)).astype(np.float32), "w2"))]  # fmt: skip
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["h"], "ln", axis=-1),
        helper.make_node("MatMul", ["h", "w1"], ["y1"], "m1"),
        helper.make_node("MatMul", ["h", "w2"], ["y2"], "m2"),
    ]
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [3, n])
          for name, n in (("x", 8), ("y1", 6), ("y2", 5))]  # fmt: skip
    graph = helper.make_graph(nodes, "g", io[:1], io[1:], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "a.onnx"))
    [site] = smoothing.smoothing_sites(model)
    weights = [numpy_helper.to_array(t) for t in inits[2:]]
    scales = smoothing.migration_scales(rng.uniform(0.5, 20.0, 8), weights, alpha=0.5)
    copy = smoothing.scaled_copy(model, site, scales)
    smoothing.insert_copies(model, {"h": copy})
    onnx.checker.check_model(model)
    assert [n.name for n in model.graph.node] == ["ln" + smoothing.SUFFIX, "m1", "m2"]
    assert {"gamma", "beta"}.isdisjoint(t.name for t in model.graph.initializer)
    onnx.save(model, str(tmp_path / "b.onnx"))
    x = rng.normal(size=(3, 8)).astype(np.float32)
    ref = ort_session(tmp_path / "a.onnx").run(None, {"x": x})
    got = ort_session(tmp_path / "b.onnx").run(None, {"x": x})
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_matmuls_no_layernorm_feeds_read_their_input_through_a_mul(tiny_export, tmp_path):
    """The attention output and FFN down projections (after GELU) get a Mul by 1/s in front,
    their weight rows times s; the FP32 outputs stay the same."""
    pre = qdq.preprocess(tiny_export / "model.onnx", tmp_path / "pre.onnx")
    tokenizer = load_tokenizer(tiny_export)
    dst = tmp_path / "smoothed.onnx"
    count = smoothing.smooth(pre, dst, tokenizer, TEXTS, 32, alpha=0.5)
    assert count == 4 + 2 * 2  # the LayerNorms, and per layer 2 MatMuls
    model = onnx.load(str(dst))
    order = {n.output[0]: i for i, n in enumerate(model.graph.node)}
    muls = [n for n in model.graph.node if n.op_type == "Mul" and n.name.endswith(smoothing.SUFFIX)]
    assert len(muls) == 2 * 2
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for mul in muls:
        (matmul,) = [n for n in model.graph.node if mul.output[0] in n.input]
        assert matmul.op_type == "MatMul" and order[mul.output[0]] < order[matmul.output[0]]
        assert consts[mul.input[1]].shape == (consts[matmul.input[1]].shape[0],)
    texts = [*TEXTS, "A text the maxima were not measured on, about ship engines."]
    np.testing.assert_allclose(
        _logits(dst, tokenizer, texts), _logits(pre, tokenizer, texts), rtol=1e-4, atol=1e-5
    )
