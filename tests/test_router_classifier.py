"""The sensitivity classifier: header rule, detectors before the model, the ONNX model with
micro-batching (a tiny random BERT exported like the build's onnx/ folder), fail closed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from router.config import CallerToken, ClassifierConfig, ModelConfig
from router.metrics import RouterMetrics
from router.sensitivity.batching import MicroBatcher
from router.sensitivity.classifier import Classifier, build_classifier
from router.sensitivity.model import OnnxSensitivityModel, length_groups

LEANING = {"confidential": 0.5, "public": 0.99999}  # P(confidential) ≈ 0.9975 for any text


def _classifier(
    folder: Path, lean: str = "confidential", **model
) -> tuple[Classifier, RouterMetrics]:
    metrics = RouterMetrics()
    token = folder.parent / "batch-job.token"  # a mounted Secret's file
    token.write_text("s3\n")
    cfg = ClassifierConfig(
        trusted_callers=["batch-job"],
        caller_tokens={"batch-job": CallerToken(file=token)},
        model=ModelConfig(path=folder / "model.int8.onnx", threshold=LEANING[lean], **model),
    )
    return build_classifier(cfg, metrics), metrics


def _failures(metrics: RouterMetrics) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("edgepack_router_classifier_failures_total "):
            return float(line.split()[1])
    raise AssertionError("metric missing")


def test_model_decides_when_rules_do_not(tiny_classifier_dir):
    async def run():
        conf, _ = _classifier(tiny_classifier_dir)
        pub, _ = _classifier(tiny_classifier_dir, "public")
        assert conf.ready and pub.ready
        d1 = await conf.classify(["Write a haiku about autumn."])
        d2 = await pub.classify(["Write a haiku about autumn."])
        return d1, d2

    d1, d2 = asyncio.run(run())
    assert (d1.sensitivity, d1.reasons) == ("confidential", ("model",))
    assert (d2.sensitivity, d2.reasons) == ("public", ())
    assert d1.classifier_ms > 0


def test_model_is_skipped_when_header_or_detector_decided(tiny_classifier_dir):
    async def run():
        clf, _ = _classifier(tiny_classifier_dir, "public")
        card = await clf.classify(["card 4111 1111 1111 1111"])
        header = await clf.classify(["hello"], {"x-data-classification": "confidential"})
        trusted = await clf.classify(
            ["card 4111 1111 1111 1111"],
            {"x-data-classification": "public", "x-caller": "batch-job", "x-caller-token": "s3"},
        )
        untrusted = await clf.classify(["hello"], {"x-data-classification": "public"})
        return clf.batcher.batches, card, header, trusted, untrusted

    batches, card, header, trusted, untrusted = asyncio.run(run())
    assert card.reasons == ("card",) and header.reasons == ("header",)
    assert (trusted.sensitivity, trusted.reasons) == ("public", ("header",))
    assert untrusted.sensitivity == "public"
    assert batches == 1  # only the untrusted "public" header needed the model


def test_micro_batching_shares_runs_and_pads_to_the_longest(tiny_classifier_dir):
    model = OnnxSensitivityModel.load(ModelConfig(path=tiny_classifier_dir / "model.int8.onnx"))
    texts = [f"request number {i} " + "word " * (i % 7) for i in range(24)]
    alone = [model.scores([t])[0] for t in texts]

    async def run():
        batcher = MicroBatcher(model, max_batch=32, max_wait=0.02)
        scores = await asyncio.gather(*(batcher.score(t) for t in texts))
        batcher.close()
        return batcher.batches, scores

    batches, scores = asyncio.run(run())
    assert batches < len(texts) / 4
    assert scores == pytest.approx(alone, abs=2e-3)  # padding to the batch's longest is masked
    assert batches >= 1


def test_length_groups_pad_only_to_similar_lengths():
    groups = length_groups([5, 40, 6, 100, 7, 44, 120])
    assert groups == [[0, 2, 4], [1, 5], [3, 6]]  # each group padded to its own longest
    assert sorted(i for g in groups for i in g) == list(range(7))


def test_missing_model_fails_closed_and_is_not_ready(tmp_path):
    async def run():
        clf, metrics = _classifier(tmp_path / "nowhere")
        decision = await clf.classify(["Write a haiku about autumn."])
        return clf, metrics, decision

    clf, metrics, decision = asyncio.run(run())
    assert not clf.ready and "not found" in clf.model_error
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("classifier_error",))
    assert _failures(metrics) == 1


class _Slow:
    def scores(self, texts: list[str]) -> list[float]:
        time.sleep(0.5)
        return [0.0] * len(texts)


class _Broken:
    def scores(self, texts: list[str]) -> list[float]:
        raise RuntimeError("ORT exploded")


@pytest.mark.parametrize("model", [_Slow(), _Broken()], ids=["timeout", "error"])
def test_model_timeout_or_error_fails_closed(model):
    metrics = RouterMetrics()
    cfg = ClassifierConfig(model=ModelConfig(path=Path("unused.onnx"), timeout_ms=50))

    async def run():
        clf = Classifier(cfg, metrics, MicroBatcher(model, max_wait=0.0))
        decision = await clf.classify(["Write a haiku about autumn."])
        clf.batcher.close()
        return decision

    decision = asyncio.run(run())
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("classifier_error",))
    assert _failures(metrics) == 1


def test_opaque_body_is_confidential_without_the_model():
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    decision = asyncio.run(clf.classify([], {}, opaque=True))
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("opaque",))


def test_a_failing_detector_fails_closed():
    class Exploding:
        label = "card"

        def found(self, text: str) -> bool:
            raise RuntimeError("bug")

    metrics = RouterMetrics()
    clf = Classifier(ClassifierConfig(), metrics, None)
    clf.detectors = [Exploding()]
    decision = asyncio.run(clf.classify(["Write a haiku about autumn."]))
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("classifier_error",))
    assert _failures(metrics) == 1


def test_a_huge_prompt_is_scanned_off_the_event_loop():
    """A 1 MB prompt takes a large fraction of a second to scan; small requests that arrive
    meanwhile must not wait for it, and the big one is still read in full."""
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    prose = "The quarterly weather report says it will rain in the north. " * 17_000
    huge = prose + " card 4111 1111 1111 1111"

    async def run() -> tuple[float, float, tuple[str, ...]]:
        start = time.perf_counter()
        big = asyncio.create_task(clf.classify([huge]))
        await asyncio.sleep(0)  # the big scan has started
        small = await clf.classify(["What is the capital of France?"])
        small_done = time.perf_counter() - start
        decision = await big
        assert small.sensitivity == "public"
        return small_done, time.perf_counter() - start, decision.reasons

    small_done, big_done, reasons = asyncio.run(run())
    assert reasons == ("card",)  # the end of the huge prompt was read
    assert small_done < big_done / 2


def test_a_request_past_its_deadline_is_not_read_further():
    """A long request still being read when its deadline passes is confidential (it is
    answered 504 anyway), even where every piece read so far was public."""
    clf = Classifier(ClassifierConfig(), RouterMetrics(), None)
    prose = "The quarterly weather report says it will rain in the north. " * 17_000
    late = asyncio.run(clf.classify([prose], deadline=time.monotonic()))
    in_time = asyncio.run(clf.classify([prose], deadline=time.monotonic() + 600))
    clf.close()
    assert (late.sensitivity, late.reasons) == ("confidential", ("deadline",))
    assert in_time.sensitivity == "public"
