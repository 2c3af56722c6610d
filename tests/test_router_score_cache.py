"""The score cache (router/sensitivity/scores.py): a resent conversation's windows are not
scored again, and that never changes a decision.

The model is fixtures/keyword_model.py (a real ONNX graph behind the real tokenizer,
windows and micro-batcher that flags any window holding a keyword): it scores a window
the same alone as in any batch, as the build's gate requires of the shipped model, so a
cold classifier is the reference a warm one must agree with on every request.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.app import apply_config
from router.config import ClassifierConfig, ModelConfig, RouterConfig
from router.metrics import RouterMetrics
from router.schema_io import load_model
from router.sensitivity.batching import MicroBatcher
from router.sensitivity.classifier import Classifier, build_classifier
from router.sensitivity.scores import ScoreCache
from tests.fixtures.keyword_model import make_keyword_model
from tests.fixtures.router_env import RouterEnv, deep_update
from tests.fixtures.waiting import eventually

KEYWORDS = ["merger", "lawsuit"]
WORDS = ["please", "summarise", "the", "weather", "report", "for", "northern", "region",
         "and", "explain", "project", "timeline", "to", "new", "team", "members"]  # fmt: skip
CARD = "card 4111 1111 1111 1111"


@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory) -> Path:
    return make_keyword_model(tmp_path_factory.mktemp("keywords"), KEYWORDS)


@pytest.fixture(scope="module")
def loop():
    """One loop for the module's classifiers; the batchers' tasks end with it."""
    loop = asyncio.new_event_loop()
    yield loop
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


def _classifier(model: Path, entries: int = 4096) -> Classifier:
    config = ModelConfig(path=model, timeout_ms=10_000, cache_entries=entries)
    return build_classifier(ClassifierConfig(model=config), RouterMetrics())


@pytest.fixture(scope="module")
def pair(keyword_model, loop):
    """A classifier with a cache that every example warms further, and one without."""
    warm, cold = _classifier(keyword_model), _classifier(keyword_model, entries=0)
    yield warm, cold
    warm.close()
    cold.close()


def _sample(metrics: RouterMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# Messages: filler of any length (a few words to several windows), a keyword anywhere in
# it or none, now and then an identifier the rules find.
filler = st.integers(0, 300).flatmap(
    lambda n: st.lists(st.sampled_from(WORDS), min_size=n, max_size=n).map(" ".join)
)  # a length drawn first: lists drawn directly are mostly short
messages = st.one_of(
    filler,
    st.builds(lambda a, k, b: f"{a} {k} {b}", filler, st.sampled_from(KEYWORDS), filler),
    st.builds(lambda a, b: f"{a} {CARD} {b}", st.sampled_from(WORDS), st.sampled_from(WORDS)),
    st.sampled_from(["", KEYWORDS[1], "lawsuit filed"]),
)
conversations = st.lists(messages, min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversation=conversations, order=st.randoms(use_true_random=False))
def test_a_warm_cache_decides_every_turn_as_a_cold_one(pair, loop, conversation, order):
    """Each turn resends the history (the chat pattern the cache is for); the turns, and
    a reordered copy of the conversation, go to both classifiers."""
    warm, cold = pair
    requests = [conversation[:n] for n in range(1, len(conversation) + 1)]
    requests.append(order.sample(conversation, len(conversation)))
    for texts in requests:
        got = loop.run_until_complete(warm.classify(texts))
        want = loop.run_until_complete(cold.classify(texts))
        assert (got.sensitivity, got.reasons) == (want.sensitivity, want.reasons), texts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversation=conversations)
def test_every_cached_score_is_the_models_own_for_that_window(pair, loop, conversation):
    warm, _ = pair
    loop.run_until_complete(warm.classify(conversation))
    _, items = warm.read(conversation)
    model = warm.batcher.model
    for window in items or ():
        cached = warm.score_cache.get(warm.score_cache.key(window))
        if cached is not None:
            assert cached == pytest.approx(model.scores([window])[0], abs=1e-6)


def test_a_resent_history_is_read_by_the_model_once(keyword_model, loop):
    clf = _classifier(keyword_model)
    long = " ".join(WORDS * 30)  # several windows
    turns = [[long], [long, "what about the east"], [long, "what about the east", long[::-1]]]
    scored = []
    for texts in turns:
        before = clf.batcher.texts
        assert loop.run_until_complete(clf.classify(texts)).sensitivity == "public"
        scored.append(clf.batcher.texts - before)
    windows = [len(clf.read(texts)[1]) for texts in turns]
    assert scored[0] == windows[0]
    assert 0 < scored[1] < windows[1] and 0 < scored[2] < windows[2]
    hits = _sample(clf.metrics, "edgepack_router_score_cache_total", result="hit")
    misses = _sample(clf.metrics, "edgepack_router_score_cache_total", result="miss")
    assert (hits + misses, misses) == (sum(windows), sum(scored))

    before = clf.batcher.texts
    loop.run_until_complete(clf.classify(turns[-1]))
    assert clf.batcher.texts == before  # all of it cached
    clf.close()


def test_rules_still_read_the_cached_history(keyword_model, loop):
    clf = _classifier(keyword_model)
    history = ["plan the project timeline", "the weather report for the region"]
    assert loop.run_until_complete(clf.classify(history)).sensitivity == "public"
    history[0] += f" and charge {CARD}"  # what the model read is cached; the card is new
    decision = loop.run_until_complete(clf.classify(history))
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("card",))
    clf.close()


class _SlowOn:
    """Scores texts at once, but a text holding "slow" only after a second."""

    def scores(self, texts: list[str]) -> list[float]:
        if any("slow" in t for t in texts):
            time.sleep(1.0)
        return [0.0] * len(texts)


def test_what_the_model_cannot_score_in_time_still_fails_closed(loop):
    config = ClassifierConfig(model=ModelConfig(path=Path("unused.onnx"), timeout_ms=100))
    metrics = RouterMetrics()
    clf = Classifier(config, metrics, MicroBatcher(_SlowOn(), max_wait=0.0))
    assert loop.run_until_complete(clf.classify(["first turn"])).sensitivity == "public"
    decision = loop.run_until_complete(clf.classify(["first turn", "a slow second turn"]))
    assert (decision.sensitivity, decision.reasons) == ("confidential", ("classifier_error",))
    assert _sample(metrics, "edgepack_router_classifier_failures_total") == 1
    assert len(clf.score_cache) == 1  # what timed out was not cached
    clf.batcher.close()


class _NanOn:
    """Scores 0.0, but NaN for a text holding "odd" (a broken model or input)."""

    def scores(self, texts: list[str]) -> list[float]:
        return [math.nan if "odd" in t else 0.0 for t in texts]


def test_a_score_that_is_not_a_number_fails_closed_fresh_or_cached(loop):
    config = ClassifierConfig(model=ModelConfig(path=Path("unused.onnx")))
    clf = Classifier(config, RouterMetrics(), MicroBatcher(_NanOn(), max_wait=0.0))
    for _ in ("fresh", "cached"):
        decision = loop.run_until_complete(clf.classify(["fine", "an odd one"]))
        assert decision.sensitivity == "confidential"
    assert loop.run_until_complete(clf.classify(["fine"])).sensitivity == "public"
    clf.batcher.close()


def test_the_cache_is_a_bounded_lru():
    cache = ScoreCache(2)
    keys = [cache.key(f"text {i}") for i in range(3)]
    cache.put(keys[0], 0.1)
    cache.put(keys[1], 0.2)
    assert cache.get(keys[0]) == 0.1  # now the most recent
    cache.put(keys[2], 0.3)
    assert (len(cache), cache.get(keys[1]), cache.get(keys[0])) == (2, None, 0.1)
    none = ScoreCache(0)
    none.put(keys[0], 0.5)
    assert len(none) == 0 and none.get(keys[0]) is None
    assert cache.key("1 2") != cache.key((1, 2)) and cache.key((1, 2)) == cache.key((1, 2))
    assert ScoreCache(2).key("a") != cache.key("a")  # salted per cache


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} missing")


def test_metrics_show_size_and_hits_and_no_text(tmp_path, keyword_model):
    secret_words = "zebra quartz lantern"
    history = [f"{secret_words} " * 60, "and the second message"]
    body = {"model": "m", "messages": [{"role": "user", "content": t} for t in history]}
    model = {"path": str(keyword_model), "timeout_ms": 10_000}
    with RouterEnv.start(tmp_path, overrides={"classifier": {"model": model}}) as env:
        assert eventually(lambda: env.client.get("/readyz").status_code == 200, 10)
        for _ in range(2):
            r = env.client.post("/v1/chat/completions", json=body)
            assert r.headers["x-sensitivity"] == "public", r.text
        text = env.client.get("/metrics").text
        entries = len(env.app_state.handler.classifier.score_cache)
    assert entries > 0 and _metric(text, "edgepack_router_score_cache_entries") == entries
    hit = _metric(text, 'edgepack_router_score_cache_total{result="hit"}')
    miss = _metric(text, 'edgepack_router_score_cache_total{result="miss"}')
    assert (hit, miss) == (entries, entries)  # the second request: every window a hit
    assert not any(word in text for word in secret_words.split())


def test_a_reload_that_changes_the_model_or_threshold_empties_the_cache(tmp_path, keyword_model):
    """The model file is replaced in place by one that flags what the old one passed: a
    cache that outlived the reload would answer with the old model's score."""
    folder = tmp_path / "onnx"
    shutil.copytree(keyword_model.parent, folder)
    flags_other = make_keyword_model(tmp_path / "other", ["weather"])
    text = "the weather report for the northern region"
    model = {"path": str(folder / "model.onnx"), "timeout_ms": 10_000}
    with RouterEnv.start(tmp_path, overrides={"classifier": {"model": model}}) as env:
        assert eventually(lambda: env.client.get("/readyz").status_code == 200, 10)
        handler = env.app_state.handler

        def route() -> str:
            r = env.client.post("/v1/chat/completions", json=_chat(text))
            return r.headers["x-sensitivity"]

        assert route() == "public" and len(handler.classifier.score_cache) == 1
        shutil.copy(flags_other, folder / "model.onnx")
        _reload(env, tmp_path, {})
        assert len(handler.classifier.score_cache) == 0
        assert route() == "confidential"

        _reload(env, tmp_path, {"classifier": {"model": {"threshold": 0.9}}})
        assert len(handler.classifier.score_cache) == 0
        assert route() == "confidential"
        assert len(handler.classifier.score_cache) == 1


def _chat(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def _reload(env: RouterEnv, tmp: Path, changes: dict) -> None:
    data = deep_update(env.config.model_dump(mode="json", exclude_none=True), changes)
    new = load_model(RouterConfig, tmp / "router.yaml", data=data)
    env.router.call(apply_config(env.router.server.config.app, new))
    env.config = new
