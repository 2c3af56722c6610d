"""Micro-batching: concurrent requests share one ONNX Runtime run.

The first request of a batch waits at most `max_wait` seconds for company (or until
`max_batch` texts are queued); then one run scores them all, padded to the batch's longest
prompt, in a single worker thread so the event loop keeps serving. While that run is busy
the next batch collects, so under load batches fill up without any extra wait.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol


class BatchModel(Protocol):
    def scores(self, texts: list[str]) -> list[float]:
        """P(positive label) for each text, in order."""
        ...


class MicroBatcher:
    def __init__(self, model: BatchModel, max_batch: int = 32, max_wait: float = 0.002) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="classifier")
        self._queue: asyncio.Queue[tuple[str, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self.batches = 0  # runs so far (tests and the benchmark read it)

    async def score(self, text: str) -> float:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        assert self._queue is not None
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            if self.max_wait > 0 and queue.qsize() < self.max_batch - 1:
                await asyncio.sleep(self.max_wait)  # let concurrent requests join
            # get_nowait only: wait_for(queue.get()) can drop an item when the timeout and
            # the get race (CPython 3.11), and a dropped caller would wait for its timeout
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(t, f) for t, f in batch if not f.done()]  # timed-out callers are gone
            if live:
                await self._score_batch(loop, live)

    async def _score_batch(self, loop, batch: list[tuple[str, asyncio.Future]]) -> None:
        self.batches += 1
        try:
            scores = await loop.run_in_executor(
                self.executor, self.model.scores, [t for t, _ in batch]
            )
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), score in zip(batch, scores, strict=True):
            if not future.done():
                future.set_result(score)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
