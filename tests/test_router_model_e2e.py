"""End to end with a real-size model (slow): the router loads an INT8 MiniLM-L6 classifier
with the package's real tokenizer, micro-batches concurrent requests, and routes each
request as the model's own score says (the head is untrained, so the test derives the
expected route from the model run directly, not from the text)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from router.config import ModelConfig
from router.sensitivity.model import OnnxSensitivityModel
from router.testing.model import make_minilm_classifier
from tests.fixtures.router_env import RouterEnv, chat

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "请用三句话介绍长城的历史。",
    "Summarise the meeting notes about the Q3 roadmap for the team.",
    "Explain how a hash table works.",
    "帮我写一封感谢信给老师。",
    "List three tips for a job interview.",
    "Translate 'good morning' into Spanish.",
]


@pytest.mark.slow
def test_router_with_a_real_size_int8_model(tmp_path):
    model_path = make_minilm_classifier(tmp_path / "onnx")
    model = OnnxSensitivityModel.load(ModelConfig(path=model_path))
    scores = model.scores(PROMPTS)
    ranked = sorted(scores)
    threshold = (ranked[3] + ranked[4]) / 2  # half the prompts on each side
    expected = {
        p: ("onprem" if s >= threshold else "sagemaker")
        for p, s in zip(PROMPTS, scores, strict=True)
    }
    # INT8 dynamic quantization scales activations per batch: a score may move a little
    clear = {p for p, s in zip(PROMPTS, scores, strict=True) if abs(s - threshold) > 0.02}
    assert len(clear) >= 4
    overrides = {"classifier": {"model": {"path": str(model_path), "threshold": threshold,
                                          "max_wait_ms": 20, "timeout_ms": 20000}}}  # fmt: skip
    with RouterEnv.start(tmp_path, overrides=overrides) as env:
        assert env.client.get("/readyz").json()["classifier"] is True
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            post = lambda p: env.client.post("/v1/chat/completions", json=chat(p))  # noqa: E731
            replies = list(pool.map(post, PROMPTS))
        batches = env.app_state.handler.classifier.batcher.batches
    for prompt, r in zip(PROMPTS, replies, strict=True):
        assert r.status_code == 200
        assert r.headers["x-sensitivity"] == (
            "confidential" if r.headers["x-route"] == "onprem" else "public"
        )
        if prompt in clear:
            assert r.headers["x-route"] == expected[prompt], prompt
    assert batches < len(PROMPTS)  # concurrent requests shared runs
