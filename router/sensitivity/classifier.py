"""Combine the header rule, the detectors and the model into one `Decision`; fail closed.

Order is cheapest first, and each later step runs only if nothing earlier decided:
header (confidential, or a trusted caller's public) → opaque body → detectors → model.
Detectors and model read the request's strings normalised and decoded (views.py); the
model reads every window of them (windows.py), up to `scan_tokens` tokens: a request with
more is confidential ("too_long"), as nothing past that was read. A long request is read a
piece at a time in a worker thread (`read_long`), and only until it is decided: its labels
are those of the first piece a detector fires on.
A model that is configured but missing, failing or late makes the request confidential
and counts `edgepack_router_classifier_failures`. Its time limit is `timeout_ms` per
`max_batch` windows (one run's worth), so a long prompt is given the time it needs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from router.callers import CallerTrust
from router.config import SAGEMAKER_MAX_BODY, ClassifierConfig
from router.metrics import RouterMetrics
from router.offload import slices
from router.sensitivity import registry, views
from router.sensitivity.batching import MicroBatcher
from router.sensitivity.decision import Decision, Sensitivity
from router.sensitivity.header import header_verdict
from router.sensitivity.model import OnnxSensitivityModel, file_stamp
from router.sensitivity.prefilter import Prefilter
from router.sensitivity.windows import Windows, scan_budget

LOG = logging.getLogger("edgepack.router")
CONFIDENTIAL: Sensitivity = "confidential"
PUBLIC: Sensitivity = "public"
Verdict = tuple[Sensitivity, tuple[str, ...]]
"""What the steps decide; `classify` makes it a `Decision` with the time it took."""
OFFLOAD_CHARS = 32 * 1024
"""Texts longer than this in total are read (normalised, scanned, cut into windows) in a
worker thread, a piece at a time (`read_long`): 1 MB of prose costs ~0.4 s of CPU to scan,
which on the event loop would stall every other request as long (the thread shares the
GIL, but the loop gets its turn between two steps)."""
Reading = tuple[tuple[str, ...], list | None]
"""The detectors' labels, and what the model scores (windows or texts; None: too long)."""


class Classifier:
    def __init__(
        self,
        config: ClassifierConfig,
        metrics: RouterMetrics,
        batcher: MicroBatcher | None,
        scan_tokens: int = scan_budget(SAGEMAKER_MAX_BODY),
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.detectors = registry.select(config.detectors)
        self.callers = CallerTrust(config)
        self.batcher = batcher
        self.scan_tokens = scan_tokens
        self.model_error: str | None = None  # set when a configured model failed to load
        self.stamp: tuple = ()  # the model files' `file_stamp` when they were loaded
        self._scanner: ThreadPoolExecutor | None = None  # one thread: big scans queue up

    def close(self) -> None:
        """Stop its threads (a reload replaced it, or the router stops); once its last
        request has been classified."""
        if self.batcher is not None:
            self.batcher.close()
        if self._scanner is not None:
            self._scanner.shutdown(wait=False)

    @property
    def ready(self) -> bool:
        """Ready when the configured model is loaded (rules-only configs are always ready)."""
        if self.config.model is None or not self.config.model.enabled:
            return True
        return self.batcher is not None and self.model_error is None

    @property
    def detectors(self) -> list[registry.Recognizer]:
        return self._prefilter.recognizers

    @detectors.setter
    def detectors(self, detectors: list[registry.Recognizer]) -> None:
        self._prefilter = Prefilter(detectors)

    def scan(self, texts: list[str]) -> tuple[str, ...]:
        """Labels of every detector that fires on any text (rules only, synchronous): one RE2
        pass per text picks the detectors that can fire, only those run (prefilter.py)."""
        return self._prefilter.scan(texts)

    def scan_all(self, texts: list[str]) -> tuple[str, ...]:
        """The reference `scan` is checked against: every detector's full check on every text."""
        return tuple(d.label for d in self.detectors if any(d.found(t) for t in texts))

    def read(self, texts: Sequence[str], fields: Sequence[str] = ()) -> Reading:
        """Labels of the detectors that fire, and the model's items when none does: its
        windows (texts as they are for a model that cuts none), None when too long."""
        view = views.read(texts, fields)
        labels = self.scan(view.rules)
        if labels or not self._model_on():
            return labels, []
        cut = self._windows()
        return labels, view.prose if cut is None else cut(view.prose, self.scan_tokens)

    def read_long(
        self, texts: Sequence[str], fields: Sequence[str] = (), deadline: float = math.inf
    ) -> Reading:
        """`read`, a piece at a time (views.parts), in a worker thread: the event loop gets
        the GIL between two steps, and no step copies the whole text. It stops at the
        first piece a detector fires on, and once the model would have more than
        `scan_tokens` tokens to read: either way the request is confidential, whatever the
        rest holds. Past `deadline` (time.monotonic()) it raises TimeoutError."""
        model = self._model_on()
        cut = self._windows() if model else None
        tokens: dict[int, list[int]] = {}
        prose: dict[int, list[str]] = {}
        left = self.scan_tokens
        for part in views.parts(texts, fields):
            if time.monotonic() > deadline:
                raise TimeoutError
            labels = self._scan_sliced(part.rules)
            if labels:
                return labels, []
            for n, piece in part.prose if model else ():
                if cut is None:
                    prose.setdefault(n, []).append(piece)
                    continue
                ids = cut.encode(piece, left)
                left -= len(ids)
                if left < 0:
                    return (), None
                tokens.setdefault(n, []).extend(ids)
        if not model:
            return (), []
        if cut is None:
            return (), ["".join(p) for p in prose.values()]
        return (), cut.cut(list(tokens.values()))

    def _windows(self) -> Windows | None:
        """The model's window cutter (None: a model that reads texts as they are)."""
        return getattr(self.batcher.model, "windows", None) if self.batcher else None

    async def _read_offloaded(
        self, texts: Sequence[str], fields: Sequence[str], deadline: float
    ) -> Reading:
        if self._scanner is None:
            self._scanner = ThreadPoolExecutor(1, thread_name_prefix="scan")
        loop = asyncio.get_running_loop()
        reading = loop.run_in_executor(self._scanner, self.read_long, texts, fields, deadline)
        return await asyncio.wait_for(reading, None if deadline == math.inf else _left(deadline))

    def _scan_sliced(self, texts: Sequence[str]) -> tuple[str, ...]:
        """`scan`, one slice of a long text at a time: the detectors' C code holds the GIL
        while it runs, and the event loop gets it back between slices (router/offload.py)."""
        found: set[str] = set()
        for text in texts:
            for part in slices(text):
                found.update(self.scan([part]))
        return tuple(label for label in self._prefilter.labels if label in found)

    async def classify(
        self,
        texts: list[str],
        headers: dict[str, str] | None = None,
        opaque: bool = False,
        fields: Sequence[str] = (),
        deadline: float = math.inf,
    ) -> Decision:
        """`texts`: the conversation; `fields`: the body's other strings (views.py);
        `deadline`: the request's (time.monotonic()), past which it is not read further."""
        start = time.perf_counter()
        sensitivity, reasons = await self._decide(texts, headers or {}, opaque, fields, deadline)
        elapsed = time.perf_counter() - start
        self.metrics.classify_seconds.observe(elapsed)
        return Decision(sensitivity, reasons, elapsed * 1000)

    async def _decide(
        self,
        texts: list[str],
        headers: dict[str, str],
        opaque: bool,
        fields: Sequence[str],
        deadline: float,
    ) -> Verdict:
        verdict = header_verdict(headers, self.config, self.callers)
        if verdict == "confidential":
            return CONFIDENTIAL, ("header",)
        if verdict == "trusted_public":
            return PUBLIC, ("header",)
        if opaque:
            return CONFIDENTIAL, ("opaque",)
        try:
            if sum(map(len, texts)) + sum(map(len, fields)) < OFFLOAD_CHARS:
                labels, items = self.read(texts, fields)
            else:
                labels, items = await self._read_offloaded(texts, fields, deadline)
        except TimeoutError:  # the request is answered 504 anyway; nothing more is read
            return CONFIDENTIAL, ("deadline",)
        except Exception as exc:  # a detector bug must not let a request through unread
            self.metrics.classifier_failures.inc()
            LOG.error("detector failed closed", extra={"fields": {"error": type(exc).__name__}})
            return CONFIDENTIAL, ("classifier_error",)
        if labels:
            return CONFIDENTIAL, labels
        if not self._model_on():
            return PUBLIC, ()
        if items is None:
            return CONFIDENTIAL, ("too_long",)
        model = self.config.model
        assert model is not None
        return await self._model_decision(items, model.threshold, model.timeout_ms, deadline)

    def _model_on(self) -> bool:
        return self.config.model is not None and self.config.model.enabled

    async def _model_decision(
        self, items: list, threshold: float, timeout_ms: float, deadline: float = math.inf
    ) -> Verdict:
        """Confidential if any item (window) scores at or above `threshold`, in time (by
        `timeout_ms` per run's worth, and by the request's `deadline`)."""
        if self.batcher is None or self.model_error is not None:
            self.metrics.classifier_failures.inc()
            return CONFIDENTIAL, ("classifier_error",)
        if not items:  # nothing the model reads (empty content, identifiers only)
            return PUBLIC, ()
        runs = math.ceil(len(items) / self.batcher.max_batch)
        batcher = self.batcher
        try:
            scores = await asyncio.wait_for(
                asyncio.gather(*(batcher.score(item, len(items)) for item in items)),
                min(timeout_ms * runs / 1000, _left(deadline)),
            )
        except Exception as exc:  # timeouts and runtime errors alike: fail closed
            self.metrics.classifier_failures.inc()
            LOG.warning("classifier failed closed", extra={"fields": {"error": type(exc).__name__}})
            return CONFIDENTIAL, ("classifier_error",)
        if max(scores) >= threshold:
            return CONFIDENTIAL, ("model",)
        return PUBLIC, ()


def _left(deadline: float) -> float:
    """Seconds until `deadline` (time.monotonic()), at least 0 (inf: no deadline)."""
    return max(0.0, deadline - time.monotonic())


def model_problem(config: ClassifierConfig) -> str | None:
    """Why the configured model does not load (one line), or None: a reload's check before
    the new config goes to every worker."""
    model = config.model
    if model is None or not model.enabled:
        return None
    try:
        OnnxSensitivityModel.load(model)
    except Exception as exc:
        return f"classifier.model: {_why(exc)}"
    return None


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, OSError | ValueError) else f"{type(exc).__name__}: {exc}"


def build_classifier(
    config: ClassifierConfig, metrics: RouterMetrics, max_body_bytes: int = SAGEMAKER_MAX_BODY
) -> Classifier:
    """A classifier with its model loaded (or marked failed, which fails every request
    closed), reading up to `scan_budget(max_body_bytes)` tokens per request."""
    batcher = None
    error = None
    stamp: tuple = ()
    model = config.model
    if model is not None and model.enabled:
        try:
            stamp = file_stamp(model)  # before loading: a change meanwhile reloads again
            batcher = MicroBatcher(
                OnnxSensitivityModel.load(model),
                model.max_batch,
                model.max_wait_ms / 1000,
                model.workers,
            )
        except Exception as exc:
            error = _why(exc)
            LOG.error("classifier model not loaded", extra={"fields": {"error": error}})
    classifier = Classifier(config, metrics, batcher, scan_budget(max_body_bytes))
    classifier.model_error = error
    classifier.stamp = stamp
    return classifier
