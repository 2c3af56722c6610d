"""Micro-batching with several runs in flight (router/sensitivity/batching.py): answers go
back to the right caller, batches overlap up to `workers`, duplicates are scored once,
a failing batch fails only its own callers, and the config wires `concurrent_runs` through."""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.config import ClassifierConfig, ModelConfig
from router.metrics import RouterMetrics
from router.sensitivity.batching import BULK_RUN, MicroBatcher
from router.sensitivity.classifier import build_classifier
from router.sensitivity.model import OnnxSensitivityModel
from tests.fixtures.tiny_model import make_classifier_dir


class _Recording:
    """Wraps a model: records each run's texts and the most runs seen at once; `delay`
    keeps a run busy long enough for the next batch to start beside it."""

    def __init__(self, model=None, delay: float = 0.02) -> None:
        self.model, self.delay = model, delay
        self.lock = threading.Lock()
        self.runs: list[list[str]] = []
        self.in_flight = self.max_in_flight = 0

    def scores(self, texts: list[str]) -> list[float]:
        with self.lock:
            self.runs.append(list(texts))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.hold(texts)
            if any("boom" in t for t in texts):
                raise RuntimeError("run failed")
            if self.model is not None:
                return self.model.scores(texts)
            return [zlib.crc32(t.encode()) / 2**32 for t in texts]  # a fixed value per text
        finally:
            with self.lock:
                self.in_flight -= 1

    def hold(self, texts: list[str]) -> None:
        time.sleep(self.delay)


class _Gated(_Recording):
    """A run of a text in `held` stays in flight until the test sets `release`: the batcher
    is under load for exactly as long as the test says, however slow the machine."""

    def __init__(self, held: set[str]) -> None:
        super().__init__(delay=0.0)
        self.held = held
        self.holding = threading.Event()
        self.release = threading.Event()

    def hold(self, texts: list[str]) -> None:
        if self.held & set(texts):
            self.holding.set()
            self.release.wait(30)

    async def until_holding(self) -> None:
        while not self.holding.is_set():
            await asyncio.sleep(0.001)


def _gather(batcher: MicroBatcher, texts: list[str]) -> list:
    async def run():
        try:
            return await asyncio.gather(*(batcher.score(t) for t in texts), return_exceptions=True)
        finally:
            batcher.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def spread_onnx(tmp_path_factory) -> Path:
    """The tiny classifier in FP32 (a text's score does not depend on its batch-mates, where
    dynamic INT8 scales per run), its head widened so that every prompt scores differently
    and a swapped answer cannot hide in rounding."""
    import onnx
    from onnx import numpy_helper

    folder = make_classifier_dir(tmp_path_factory.mktemp("batching") / "onnx", seed=3)
    graph = onnx.load(folder / "model.onnx")
    for init in graph.graph.initializer:
        if init.name == "classifier.weight":
            w = numpy_helper.to_array(init)
            w = (w - w.mean(axis=1, keepdims=True)) * 3e4
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(graph, folder / "spread.onnx")
    return folder / "spread.onnx"


@pytest.fixture(scope="module")
def fp32_model(spread_onnx) -> OnnxSensitivityModel:
    return OnnxSensitivityModel.load(ModelConfig(path=spread_onnx, solo_threads=1))


def test_overlapping_batches_answer_every_caller_with_its_own_score():
    model = _Recording(delay=0.02)
    texts = [f"prompt {i} " + "x" * (i % 13) for i in range(120)]
    scores = _gather(MicroBatcher(model, max_batch=5, max_wait=0.001, workers=3), texts)
    assert scores == [zlib.crc32(t.encode()) / 2**32 for t in texts]
    assert model.max_in_flight == 3  # three runs overlapped, never more
    assert max(len(r) for r in model.runs) <= 5
    assert sorted(t for r in model.runs for t in r) == sorted(texts)  # each scored once


def test_one_worker_runs_one_batch_at_a_time():
    model = _Recording()
    _gather(MicroBatcher(model, max_batch=4, max_wait=0.0, workers=1), [str(i) for i in range(20)])
    assert model.max_in_flight == 1 and len(model.runs) >= 5


def test_concurrent_onnx_runs_match_solo_runs(fp32_model):
    words = ["word", "longer", "词"]
    texts = [f"request {i}: " + " ".join(words[: 1 + i % 3] * (i % 9)) for i in range(48)]
    alone = [fp32_model.scores([t])[0] for t in texts]
    assert len({round(a, 5) for a in alone}) >= 40  # distinct: a mix-up would show
    model = _Recording(fp32_model, delay=0.002)
    scores = _gather(MicroBatcher(model, max_batch=6, max_wait=0.001, workers=2), texts)
    assert model.max_in_flight == 2 and len(model.runs) >= 8
    assert scores == pytest.approx(alone, abs=1e-6)


def test_identical_texts_in_a_batch_are_scored_once():
    model = _Recording()
    texts = ["same prompt"] * 10 + ["other"] * 3 + ["third"]
    batcher = MicroBatcher(model, max_batch=32, max_wait=0.01, workers=2)
    scores = _gather(batcher, texts)
    assert model.runs == [["same prompt", "other", "third"]]
    assert batcher.texts == 3 and batcher.batches == 1
    assert scores == [zlib.crc32(t.encode()) / 2**32 for t in texts]


def test_a_failing_batch_fails_only_its_own_callers():
    model = _Recording()
    texts = ["fine 1", "boom", "fine 2", "fine 3"]
    results = _gather(MicroBatcher(model, max_batch=1, max_wait=0.0, workers=2), texts)
    assert isinstance(results[1], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 1] == [
        zlib.crc32(t.encode()) / 2**32 for t in ("fine 1", "fine 2", "fine 3")
    ]


def test_a_caller_gone_before_its_batch_starts_is_not_scored():
    model = _Gated(held={"first"})

    async def run():
        batcher = MicroBatcher(model, max_batch=1, max_wait=0.0, workers=1)
        first = asyncio.create_task(batcher.score("first"))
        await model.until_holding()  # "first" is running; "late" waits for the only worker
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.score("late"), 0.02)
        model.release.set()
        result = await first
        await asyncio.sleep(0.05)
        batcher.close()
        return result

    assert asyncio.run(run()) == zlib.crc32(b"first") / 2**32
    assert model.runs == [["first"]]


def test_concurrent_runs_come_from_the_config(tiny_classifier_dir):
    folder = tiny_classifier_dir
    cfg = ClassifierConfig(model=ModelConfig(path=folder / "model.int8.onnx", concurrent_runs=3))
    clf = build_classifier(cfg, RouterMetrics())
    assert clf.ready and clf.batcher.workers == 3 and clf.batcher.executor._max_workers == 3
    clf.batcher.close()
    assert ModelConfig(path=Path("m.onnx")).concurrent_runs == 2  # the 2-core default
    assert ModelConfig.model_validate({"path": "m.onnx", "workers": 3}).concurrent_runs == 3
    with pytest.raises(ValidationError, match="concurrent_runs"):
        ModelConfig(path=Path("m.onnx"), concurrent_runs=0)


def test_an_idle_batcher_sends_a_lone_request_at_once_and_waits_only_under_load():
    model = _Gated(held={"busy"})

    async def run():
        idle = MicroBatcher(model, max_batch=8, max_wait=60.0, workers=2)
        await asyncio.wait_for(idle.score("alone"), 20)  # nothing in flight: no 60 s wait
        idle.close()
        batcher = MicroBatcher(model, max_batch=8, max_wait=2.0, workers=2)
        busy = asyncio.create_task(batcher.score("busy"))
        await model.until_holding()  # "busy" is in flight: the next ones wait 2 s for company
        first = asyncio.create_task(batcher.score("a"))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, batcher.score("b"))
        model.release.set()
        await busy
        batcher.close()

    asyncio.run(run())
    assert model.runs == [["alone"], ["busy"], ["a", "b"]]


class _WithAlone(_Gated):
    def scores_alone(self, texts: list[str]) -> list[float]:
        with self.lock:
            self.runs.append(["<alone>"])
        return self.scores(texts)


def test_a_run_with_none_beside_it_uses_scores_alone():
    model = _WithAlone(held={"a"})

    async def run():
        batcher = MicroBatcher(model, max_batch=8, max_wait=0.0, workers=2)
        await batcher.score("first")  # alone
        both = [asyncio.create_task(batcher.score(t)) for t in ("a", "b")]
        await model.until_holding()  # "a" and "b" run alone as one batch; "c" starts beside it
        await batcher.score("c")
        model.release.set()
        await asyncio.gather(*both)
        batcher.close()
        return batcher.alone

    assert asyncio.run(run()) == 2
    assert model.runs == [["<alone>"], ["first"], ["<alone>"], ["a", "b"], ["c"]]


def test_the_solo_session_scores_like_the_shared_one(spread_onnx):
    path = spread_onnx
    texts = ["short", "a somewhat longer prompt about the weather", "第三个句子"]
    two = OnnxSensitivityModel.load(ModelConfig(path=path, threads=1, solo_threads=2))
    assert two.solo_session is not None
    assert two.solo_session.get_session_options().intra_op_num_threads == 2
    assert two.scores_alone(texts) == pytest.approx(two.scores(texts), abs=1e-6)
    one = OnnxSensitivityModel.load(ModelConfig(path=path, threads=2, solo_threads=2))
    assert one.solo_session is None  # no more threads to gain: no second session


def test_a_long_prompts_windows_run_in_the_bulk_lane_beside_short_prompts():
    """A request with more items than `max_batch` runs one small run at a time on the bulk
    thread (the request with fewer items first); short prompts keep the batch workers and
    are answered while it runs."""
    model = _Recording(delay=0.02)

    async def run():
        batcher = MicroBatcher(model, max_batch=4, max_wait=0.0, workers=2)
        big = [f"window {i}" for i in range(40)]
        medium = [f"part {i}" for i in range(8)]
        long = asyncio.gather(*(batcher.score(t, len(big)) for t in big))
        while not model.runs:  # the bulk lane is busy with the long prompt
            await asyncio.sleep(0.001)
        later = asyncio.gather(*(batcher.score(t, len(medium)) for t in medium))
        short = await batcher.score("short prompt")
        scores = await long, await later, short
        batcher.close()
        return scores

    big_scores, medium_scores, short = asyncio.run(run())
    assert big_scores == [zlib.crc32(f"window {i}".encode()) / 2**32 for i in range(40)]
    assert medium_scores == [zlib.crc32(f"part {i}".encode()) / 2**32 for i in range(8)]
    assert short == zlib.crc32(b"short prompt") / 2**32
    bulk = [r for r in model.runs if r != ["short prompt"]]
    assert all(len(r) <= BULK_RUN for r in bulk)
    short_at = model.runs.index(["short prompt"])
    last_big = max(i for i, r in enumerate(model.runs) if any(t.startswith("window") for t in r))
    assert short_at < last_big  # not queued behind the long prompt
    medium_runs = [i for i, r in enumerate(model.runs) if any(t.startswith("part") for t in r)]
    assert max(medium_runs) < last_big  # the request with fewer items went ahead
    assert model.max_in_flight <= 3  # two batch workers and the one bulk run


def test_a_bulk_caller_gone_is_not_scored():
    model = _Recording(delay=0.05)

    async def run() -> int:
        batcher = MicroBatcher(model, max_batch=2, max_wait=0.0, workers=1)
        items = asyncio.gather(*(batcher.score(f"window {i}", 20) for i in range(20)))
        while not model.runs:
            await asyncio.sleep(0.001)
        started = len(model.runs)
        items.cancel()  # the caller timed out
        await asyncio.sleep(0.3)
        batcher.close()
        return started

    started = asyncio.run(run())
    assert len(model.runs) <= started + 1  # at most a run already handed to the thread
