"""Micro-batching: concurrent requests share ONNX Runtime runs, `workers` runs in flight.

While another run is in flight, the first request of a batch waits at most `max_wait`
seconds for company (or until `max_batch` texts are queued); an idle batcher sends a lone
request at once (the wait would only add to its latency). Then one run scores them all,
padded per length group to its longest prompt (model.py), in a worker thread so the event
loop keeps serving.
Up to `workers` batches run at once on one shared InferenceSession (ORT allows concurrent
`run()`); while every worker is busy the next batch collects, so under load batches fill
up without any extra wait. Identical texts in a batch are scored once.

A long text (over `LONG_CHARS`) is scored alone, on a thread of its own: tokenizing
megabytes takes seconds, and the short prompts that would have shared its batch (and the
batch workers) would wait for it, past their timeout. Likewise the windows of a long prompt:
a caller says how many items its request has (`cost`), and a request with more than
`max_batch` goes to the bulk lane, which runs one window at a time on that thread (the
request with fewer items first), so the batch workers stay free for short prompts and a
long prompt takes at most one core, at a lower priority. One window a run: a full window
costs no more CPU alone than in a batch, and its run needs an eighth of a batch's memory
(measurements: docs/decisions/006-huge-requests.md).

Two single-threaded runs rather than one run on two intra-op threads: a prompt's matrices
are small, so splitting one run across threads synchronises more than it computes. A lone
prompt is answered sooner on 2 threads, so a run that starts with none beside it calls the
model's `scores_alone` (a 2-thread InferenceSession). Measurements:
docs/decisions/004-router-measured-choices.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class BatchModel(Protocol):
    """May also offer `scores_alone(texts)`: used for a run that starts while no other is in
    flight (OnnxSensitivityModel runs it on an InferenceSession with more intra-op threads)."""

    def scores(self, texts: list[str]) -> list[float]:
        """P(positive label) for each text, in order."""
        ...


Pending = tuple[str, asyncio.Future]
LONG_CHARS = 32 * 1024
BULK_RUN = 1  # items per run in the bulk lane
LONG_NICE = 10  # the long thread's niceness: short prompts' runs get the cores first


class MicroBatcher:
    def __init__(
        self, model: BatchModel, max_batch: int = 16, max_wait: float = 0.002, workers: int = 2
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.workers = workers
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="classifier")
        self.long = ThreadPoolExecutor(
            1, thread_name_prefix="classifier-long", initializer=_lower_priority
        )
        self._queue: asyncio.Queue[Pending] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # strong references to batches in flight
        self._bulk: list[tuple[int, int, Any, asyncio.Future]] = []  # heap: cost, order
        self._order = itertools.count()
        self._bulk_worker: asyncio.Task | None = None
        self._bulk_busy = False
        self.batches = 0  # runs so far (tests and the benchmark read it)
        self.texts = 0  # distinct texts scored so far (duplicates in a batch count once)
        self.alone = 0  # runs that started with no other in flight (model.scores_alone)

    async def score(self, text: str, cost: int = 1) -> float:
        """`text`'s score; `cost`: how many items its request has in all."""
        if len(text) > LONG_CHARS:
            loop = asyncio.get_running_loop()
            return (await loop.run_in_executor(self.long, self.model.scores, [text]))[0]
        if cost > self.max_batch:
            return await self._score_bulk(text, cost)
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.workers)
            self._worker = asyncio.create_task(self._collect())
        assert self._queue is not None
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((text, future))
        return await future

    async def _collect(self) -> None:
        """Form batches as workers free up; each batch runs as its own task."""
        assert self._queue is not None and self._slots is not None
        queue, slots = self._queue, self._slots
        while True:
            first = await queue.get()
            await slots.acquire()  # every worker busy: the queue keeps filling meanwhile
            if self.max_wait > 0 and self._running and queue.qsize() < self.max_batch - 1:
                await asyncio.sleep(self.max_wait)  # under load: let concurrent requests join
            # get_nowait only: wait_for(queue.get()) can drop an item when the timeout and
            # the get race (CPython 3.11), and a dropped caller would wait for its timeout
            batch = [first]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(t, f) for t, f in batch if not f.done()]  # timed-out callers are gone
            if not live:
                slots.release()
                continue
            alone = not self._running and not self._bulk_busy
            task = asyncio.create_task(self._score_batch(live, alone))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _score_bulk(self, item, cost: int) -> float:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._bulk, (cost, next(self._order), item, future))
        if self._bulk_worker is None or self._bulk_worker.done():
            self._bulk_worker = asyncio.create_task(self._run_bulk())
        return await future

    async def _run_bulk(self) -> None:
        """The bulk lane: `BULK_RUN` items a run, one run at a time, on the `long` thread."""
        while self._bulk:
            batch: list[Pending] = []
            while self._bulk and len(batch) < BULK_RUN:
                _, _, item, future = heapq.heappop(self._bulk)
                if not future.done():  # timed-out callers are gone
                    batch.append((item, future))
            if batch:
                self._bulk_busy = True
                try:
                    await self._score_batch(batch, executor=self.long)
                finally:
                    self._bulk_busy = False

    async def _score_batch(
        self, batch: list[Pending], alone: bool = False, executor: ThreadPoolExecutor | None = None
    ) -> None:
        self.batches += 1
        unique = list(dict.fromkeys(t for t, _ in batch))
        self.texts += len(unique)
        run = self.model.scores
        if alone and hasattr(self.model, "scores_alone"):
            run = self.model.scores_alone  # nothing else in flight: the model may use more threads
            self.alone += 1
        loop = asyncio.get_running_loop()
        try:
            scores = await loop.run_in_executor(executor or self.executor, run, unique)
            by_text = dict(zip(unique, scores, strict=True))
        except Exception as exc:  # every caller of this batch fails (closed, in classifier)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for text, future in batch:
            if not future.done():
                future.set_result(by_text[text])

    def close(self) -> None:
        for worker in (self._worker, self._bulk_worker):
            if worker is not None:
                worker.cancel()
        for task in self._running:
            task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.long.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """This thread at niceness `LONG_NICE` (on Linux niceness is per thread): while a long
    prompt is scored, a short prompt's run and the event loop get a core first. Its runs
    hold no GIL, so a lower priority cannot keep the event loop waiting."""
    with contextlib.suppress(AttributeError, OSError):  # elsewhere: the default priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LONG_NICE)
