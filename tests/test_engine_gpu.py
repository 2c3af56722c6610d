"""A real TensorRT engine from the Q/DQ model, compared with ONNX Runtime.

Runs only where `tensorrt` imports and an NVIDIA GPU is present (the `gpu` marker; the A100
CI runner). The spec takes this host's TensorRT line and compute capability so the build
checks pass; everything else (profile, flags, timing cache) is the real path.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engine.build import build_engine
from pipeline.engine.capability import Host, line_of
from pipeline.engine.runtime import run_engine
from pipeline.engine.spec import EngineSpec, profile_shapes
from pipeline.engine.target_spec import onnx_io
from tests.fixtures.recipes import TEXTS

pytestmark = pytest.mark.gpu
TRT_DTYPES = {1: {"FLOAT"}, 7: {"INT64", "INT32"}}
"""ONNX elem_type → what TensorRT may make of it (8.x narrows INT64 inputs to INT32)."""
HOST = Host.probe()
if HOST.tensorrt is None or HOST.compute_capability is None:
    pytest.skip(f"needs TensorRT and an NVIDIA GPU ({HOST.describe()})", allow_module_level=True)


@pytest.mark.parametrize("strongly_typed", [False, True])
def test_engine_matches_onnxruntime(tmp_path, strongly_typed, tiny_onnx_models):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    onnx = tiny_onnx_models
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    spec = EngineSpec(
        target="gpu-test",
        trt_line=line_of(HOST.tensorrt),
        compute_capability=HOST.compute_capability,
        strongly_typed=strongly_typed or HOST.tensorrt.startswith("11."),
        workspace_mb=1024,
        inputs=inputs,
        shapes=profile_shapes(inputs, (1, 2, 4), (8, 32, 64)),
    )
    cache = tmp_path / "timing.cache"
    info = build_engine(spec, onnx / "model.qdq.onnx", tmp_path / "model.plan", timing_cache=cache)
    assert cache.stat().st_size > 0 and info["io"]["logits"]["mode"] == "output"
    tokenizer = AutoTokenizer.from_pretrained(onnx)
    feeds = {
        k: v.astype(np.int64)
        for k, v in tokenizer(TEXTS, padding=True, return_tensors="np").items()
    }
    got = run_engine(tmp_path / "model.plan", feeds)["logits"]
    session = ort.InferenceSession(str(onnx / "model.qdq.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=5e-2)
    clear = np.abs(want[:, 0] - want[:, 1]) > 0.1  # random weights: skip near-ties
    assert (got.argmax(-1) == want.argmax(-1))[clear].all()
    again = build_engine(spec, onnx / "model.qdq.onnx", tmp_path / "again.plan", timing_cache=cache)
    assert again["io"] == info["io"]  # rebuilt from the timing cache: the same interface
    assert_io_matches_onnx(again["io"], onnx / "model.qdq.onnx")
    rerun = run_engine(tmp_path / "again.plan", feeds)["logits"]
    np.testing.assert_allclose(rerun, want, atol=5e-2)


def assert_io_matches_onnx(io: dict[str, dict], model) -> None:
    """The deserialised engine's tensors: the ONNX model's names, modes, dtypes and dims."""
    inputs, outputs, _opset = onnx_io(model)
    declared = {t["name"]: ("input", t) for t in inputs} | {
        t["name"]: ("output", t) for t in outputs
    }
    assert set(io) == set(declared)
    for name, (mode, tensor) in declared.items():
        assert io[name]["mode"] == mode, name
        assert io[name]["dtype"] in TRT_DTYPES[tensor["elem_type"]], (name, io[name]["dtype"])
        assert io[name]["shape"] == tensor["dims"], name  # -1 where the axis is dynamic
