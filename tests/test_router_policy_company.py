"""A made-up company's policy against the built-ins: Corvid Dynamics (invented for this
test) has code names, an internal domain and network, an employee-ID format with a check
digit, a published support line, and two topics it keeps to itself. Each kind of entry
catches a prompt that the built-in rules and the model let through, and no public row of
the eval split is flagged that was not flagged without the policy.

The model is the real MiniLM-L6 encoder with an untrained head (router/testing/model.py)
and the build's pooled `embedding` output (pipeline/pooling.py); topic thresholds are
chosen as the build chooses them (pipeline/deploy/topics.py). Its head's threshold is
set where it never fires, so the model's own answers (meaningless here) do not hide what
the policy adds.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline.deploy import topics
from pipeline.pooling import add_pooled_output
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier, build_classifier
from router.testing.model import make_minilm_classifier

EVAL = Path(__file__).resolve().parents[1] / "recipes" / "data" / "sensitivity" / "eval.jsonl"
POLICY = {
    "terms": [
        {"name": "codenames", "words": ["Nightjar", "Project Halyard", "夜鹰计划"]},
        {"name": "products", "words": ["Corvid Atlas 9"]},
    ],
    "patterns": [
        {"name": "employee_id", "regex": r"\bCVD-(?P<v>\d{7})\b", "validator": "luhn"},
    ],
    "hosts": [{"name": "corvid", "domains": ["corvid-internal.net"], "cidrs": ["10.42.0.0/16"]}],
    "allow": ["+1 (206) 555-0147"],  # the support line on the company's website
    "topics": [
        {"name": "unreleased-products", "description": "products not yet announced",
         "examples": ["The delivery drone we have not announced yet gets a longer-range "
                      "battery and ships next spring.",
                      "Draft the launch plan for our unannounced warehouse robot before the "
                      "embargo lifts.",
                      "Our next handheld scanner is still secret; list its new features."]},
        {"name": "reorganisation", "description": "the planned restructuring of the company",
         "examples": ["The Q3 reorganisation merges the robotics and sensing divisions.",
                      "Which managers lose their teams in the restructuring next quarter?",
                      "Write the memo announcing the layoffs that follow the reorg."]},
    ],
}  # fmt: skip
CAUGHT = {
    "term:codenames": "Summarise the status of Nightjar for the steering committee.",
    "term:products": "Write a teaser tweet for the corvid atlas 9.",
    "pattern:employee_id": "Update the holiday balance of CVD-1234566 to 12 days.",
    "host:corvid": "Why does https://build.corvid-internal.net/jobs time out from 10.42.7.19?",
    "topic:unreleased-products": "Help me describe the features of our new drone that we "
    "haven't announced to anyone yet.",
    "topic:reorganisation": "Draft the internal memo about the coming restructuring: robotics "
    "and sensing become one division.",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    model = make_minilm_classifier(tmp_path_factory.mktemp("corvid-model"))
    add_pooled_output(model)
    return model.parent


def _rows() -> list[dict]:
    return [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]


def _classifier(model_dir: Path, policy: dict | None) -> Classifier:
    model = {
        "path": str(model_dir / "model.int8.onnx"),
        "threshold": 0.9999,
        "timeout_ms": 60_000,
    }  # a loaded test machine must not fail requests closed
    config = ClassifierConfig.model_validate({"model": model, "sensitivity": policy or {}})
    classifier = build_classifier(config, RouterMetrics())
    assert classifier.model_error is None, classifier.model_error
    return classifier


def _decide(classifier: Classifier, texts: list[str]) -> list:
    async def run() -> list:
        out: list = []
        try:
            for start in range(0, len(texts), 16):
                chunk = texts[start : start + 16]
                out += await asyncio.gather(*(classifier.classify([t]) for t in chunk))
        finally:
            classifier.close()
        return out

    return asyncio.run(run())


@pytest.mark.slow
def test_each_kind_of_entry_catches_what_the_built_ins_miss_with_no_new_false_alarm(model_dir):
    rows = _rows()
    public = [r["text"] for r in rows if r["label"] == "public"]
    confidential = [r["text"] for r in rows if r["label"] == "confidential"]
    embedder = topics.Embedder(model_dir / "model.int8.onnx", model_dir / "tokenizer.json", 128)
    chosen = topics.choose(
        embedder,
        ClassifierConfig.model_validate(
            {"model": {"path": str(model_dir / "model.int8.onnx"), "threshold": 0.5},
             "sensitivity": {"topics": [{**t, "threshold": 0.5} for t in POLICY["topics"]]}}
        ).sensitivity.topics,
        public,
        confidential,
    )  # fmt: skip
    policy = {**POLICY, "topics": [{**t, "threshold": None} for t in POLICY["topics"]]}
    for topic in policy["topics"]:
        topic["threshold"] = chosen[topic["name"]]["threshold"]
        assert topic["threshold"] < 1

    texts = [*CAUGHT.values(), "Call our support line +1 (206) 555-0147 about my order.",
             *public]  # fmt: skip
    without = _decide(_classifier(model_dir, None), texts)
    with_policy = _decide(_classifier(model_dir, policy), texts)
    for (reason, text), before, after in zip(CAUGHT.items(), without, with_policy, strict=False):
        assert before.sensitivity == "public", (text, before)
        assert after.sensitivity == "confidential" and reason in after.reasons, (text, after)
        assert all(word not in r for r in after.reasons for word in ("Nightjar", "CVD", "10.42"))
    support = len(CAUGHT)
    assert with_policy[support].reasons == () or "phone" not in with_policy[support].reasons
    flagged_before = {t for t, d in zip(texts, without, strict=True) if d.confidential}
    new_alarms = [
        (t[:80], d.reasons)
        for t, d in zip(texts[support + 1 :], with_policy[support + 1 :], strict=True)
        if d.confidential and t not in flagged_before
    ]
    assert new_alarms == []
