"""The CPU candidate with fixed activation scales: the uint8 parameters DynamicQuantizeLinear
would compute, every dynamic scale replaced (or the build refuses), ORT's fused integer
kernel kept, and a prompt scored alone as in any batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.quant import calibration, cpu_int8, static_scales
from pipeline.quant.onnx_eval import load_tokenizer
from tests.fixtures.recipes import CONFIDENTIAL, PUBLIC
from tests.test_quant_invariance import TEXTS, assert_invariant

MAX_LENGTH = 128


@given(low=st.floats(-1e4, 1e4), width=st.floats(0, 1e4))
def test_uint8_params_hold_zero_exactly_and_span_the_range(low, width):
    high = low + width
    scale, zero_point = static_scales.uint8_params(low, high)
    assert 0 <= zero_point <= 255 and scale > 0
    assert (0 - zero_point) * scale <= min(low, 0.0) + scale  # the low end, within a step
    assert (255 - zero_point) * scale >= max(high, 0.0) - scale  # the high end, within a step


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_export) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("static-fused")
    tokenizer = load_tokenizer(tiny_export)
    fused = cpu_int8.bert_fusion(tiny_export / "model.onnx", work / "fused.onnx")
    cache = calibration.calibrate(
        fused, tokenizer, PUBLIC + CONFIDENTIAL, MAX_LENGTH, "percentile", 99.999,
        cpu_int8.CALIBRATED_OPS, work / "calibration.json", symmetric=False,
    )  # fmt: skip
    candidate = cpu_int8.static_fused_candidate(fused, cache, work)
    return {"model": candidate.build(work / "static-fused.onnx", []), "fused": fused,
            "cache": cache, "work": work}  # fmt: skip


def test_no_dynamic_scale_is_left_and_the_integer_kernel_is_fused(built):
    ops = [n.op_type for n in onnx.load(str(built["model"])).graph.node]
    assert "DynamicQuantizeLinear" not in ops and "DynamicQuantizeMatMul" not in ops
    assert "MatMulIntegerToFloat" in ops and "MatMulInteger" not in ops
    assert "QAttention" in ops and "QuantizeLinear" in ops


def test_a_tensor_without_a_range_stops_the_build(built):
    raw = next(built["work"].glob("*.raw.onnx"))
    ranges = calibration.load_ranges(built["cache"])
    dynamic = [n.input[0] for n in onnx.load(str(raw)).graph.node
               if n.op_type == "DynamicQuantizeLinear"]  # fmt: skip
    del ranges[dynamic[-1]]
    with pytest.raises(ValueError, match=f"no calibrated range for {dynamic[-1]}"):
        static_scales.fix_scales(raw, built["work"] / "unfixed.onnx", ranges)


def test_its_scores_follow_fp32(built, tiny_export):
    from pipeline.quant.onnx_eval import ort_session, predict_logits

    tokenizer = load_tokenizer(tiny_export)
    texts = PUBLIC + CONFIDENTIAL
    fp32 = predict_logits(ort_session(tiny_export / "model.onnx"), tokenizer, texts, MAX_LENGTH)
    int8 = predict_logits(ort_session(built["model"]), tokenizer, texts, MAX_LENGTH)
    assert np.abs(fp32 - int8).max() < 0.1 * np.abs(fp32).max()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(TEXTS, min_size=2, max_size=8), pad=st.booleans())
def test_it_scores_a_prompt_alone_as_in_a_batch(built, tiny_export, texts, pad):
    assert_invariant(built["model"], load_tokenizer(tiny_export), texts, pad)
