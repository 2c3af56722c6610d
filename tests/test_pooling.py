"""The pooled `embedding` output the build adds to the classifier's ONNX: the encoder's
mean-pooled, L2-normalised last hidden states (as PyTorch computes them), on the FP32,
dynamic INT8 and Q/DQ models, with the logits unchanged."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pipeline.pooling import EMBEDDING, add_pooled_output
from tests.fixtures.recipes import TEXTS
from tests.fixtures.tiny_model import LABELS, load_tokenizer, tiny_bert


def _feed(texts: list[str]) -> dict[str, np.ndarray]:
    batch = load_tokenizer()(texts, padding=True, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in batch.items()}


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "model.qdq.onnx"])
def test_one_run_gives_the_logits_as_before_and_the_pooled_embedding(tiny_onnx_models, tmp_path,
                                                                     name):  # fmt: skip
    path = tmp_path / name
    shutil.copy(tiny_onnx_models / name, path)
    feed = _feed(TEXTS[:6])  # padded: the mask must keep padding out of the mean
    before = ort.InferenceSession(str(path)).run(["logits"], feed)[0]
    add_pooled_output(path)
    add_pooled_output(path)  # once only
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["logits", EMBEDDING]
    logits, embedding = ort.InferenceSession(str(path)).run(["logits", EMBEDDING], feed)
    np.testing.assert_array_equal(logits, before)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    if name == "model.onnx":  # the FP32 model: exactly what PyTorch's encoder pools
        encoder = tiny_bert(labels=LABELS).bert
        with torch.no_grad():
            hidden = encoder(**{k: torch.from_numpy(v) for k, v in feed.items()})[0]
        mask = torch.from_numpy(feed["attention_mask"]).unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        expected = torch.nn.functional.normalize(mean, dim=1).numpy()
        np.testing.assert_allclose(embedding, expected, atol=1e-5)


def test_a_graph_without_a_head_to_read_is_refused(tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              str(path))  # fmt: skip
    with pytest.raises(ValueError, match="cannot find the encoder output"):
        add_pooled_output(path)
