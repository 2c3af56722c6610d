"""Combine the header rule, the detectors and the model into one `Decision`; fail closed.

Order is cheapest first, and each later step runs only if nothing earlier decided:
header (confidential, or a trusted caller's public) → opaque body → detectors → model.
A model that is configured but missing, failing or late makes the request confidential
and counts `edgepack_router_classifier_failures`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from router.callers import CallerTrust
from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.offload import slices
from router.sensitivity import registry
from router.sensitivity.batching import MicroBatcher
from router.sensitivity.decision import Decision, Sensitivity
from router.sensitivity.header import header_verdict
from router.sensitivity.prefilter import Prefilter

LOG = logging.getLogger("edgepack.router")
CONFIDENTIAL: Sensitivity = "confidential"
PUBLIC: Sensitivity = "public"
Verdict = tuple[Sensitivity, tuple[str, ...]]
"""What the steps decide; `classify` makes it a `Decision` with the time it took."""
OFFLOAD_CHARS = 32 * 1024
"""Texts longer than this in total are scanned in a worker thread: 1 MB of prose costs
~0.4 s of CPU, which on the event loop would stall every other request as long (the
thread shares the GIL, but the loop gets its turn every switch interval)."""


class Classifier:
    def __init__(
        self, config: ClassifierConfig, metrics: RouterMetrics, batcher: MicroBatcher | None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.detectors = registry.select(config.detectors)
        self.callers = CallerTrust(config)
        self.batcher = batcher
        self.model_error: str | None = None  # set when a configured model failed to load
        self._scanner: ThreadPoolExecutor | None = None  # one thread: big scans queue up

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

    async def _scan_offloaded(self, texts: list[str]) -> tuple[str, ...]:
        if self._scanner is None:
            self._scanner = ThreadPoolExecutor(1, thread_name_prefix="scan")
        return await asyncio.get_running_loop().run_in_executor(
            self._scanner, self._scan_sliced, texts
        )

    def _scan_sliced(self, texts: list[str]) -> tuple[str, ...]:
        """`scan`, one slice of a long text at a time: the detectors' C code holds the GIL
        while it runs, and the event loop gets it back between slices (router/offload.py)."""
        found: set[str] = set()
        for text in texts:
            for part in slices(text):
                found.update(self.scan([part]))
        return tuple(label for label in self._prefilter.labels if label in found)

    async def classify(
        self, texts: list[str], headers: dict[str, str] | None = None, opaque: bool = False
    ) -> Decision:
        start = time.perf_counter()
        sensitivity, reasons = await self._decide(texts, headers or {}, opaque)
        elapsed = time.perf_counter() - start
        self.metrics.classify_seconds.observe(elapsed)
        return Decision(sensitivity, reasons, elapsed * 1000)

    async def _decide(self, texts: list[str], headers: dict[str, str], opaque: bool) -> Verdict:
        verdict = header_verdict(headers, self.config, self.callers)
        if verdict == "confidential":
            return CONFIDENTIAL, ("header",)
        if verdict == "trusted_public":
            return PUBLIC, ("header",)
        if opaque:
            return CONFIDENTIAL, ("opaque",)
        try:
            if sum(map(len, texts)) < OFFLOAD_CHARS:
                labels = self.scan(texts)
            else:
                labels = await self._scan_offloaded(texts)
        except Exception as exc:  # a detector bug must not let a request through unread
            self.metrics.classifier_failures.inc()
            LOG.error("detector failed closed", extra={"fields": {"error": type(exc).__name__}})
            return CONFIDENTIAL, ("classifier_error",)
        if labels:
            return CONFIDENTIAL, labels
        model = self.config.model
        if model is None or not model.enabled:
            return PUBLIC, ()
        return await self._model_decision("\n".join(texts), model.threshold, model.timeout_ms)

    async def _model_decision(self, text: str, threshold: float, timeout_ms: float) -> Verdict:
        if self.batcher is None or self.model_error is not None:
            self.metrics.classifier_failures.inc()
            return CONFIDENTIAL, ("classifier_error",)
        try:
            score = await asyncio.wait_for(self.batcher.score(text), timeout_ms / 1000)
        except Exception as exc:  # timeouts and runtime errors alike: fail closed
            self.metrics.classifier_failures.inc()
            LOG.warning("classifier failed closed", extra={"fields": {"error": type(exc).__name__}})
            return CONFIDENTIAL, ("classifier_error",)
        if score >= threshold:
            return CONFIDENTIAL, ("model",)
        return PUBLIC, ()


def build_classifier(config: ClassifierConfig, metrics: RouterMetrics) -> Classifier:
    """A classifier with its model loaded (or marked failed, which fails every request closed)."""
    batcher = None
    error = None
    model = config.model
    if model is not None and model.enabled:
        try:
            from router.sensitivity.model import OnnxSensitivityModel

            batcher = MicroBatcher(
                OnnxSensitivityModel.load(model),
                model.max_batch,
                model.max_wait_ms / 1000,
                model.workers,
            )
        except Exception as exc:
            error = (
                str(exc)
                if isinstance(exc, OSError | ValueError)
                else f"{type(exc).__name__}: {exc}"
            )
            LOG.error("classifier model not loaded", extra={"fields": {"error": error}})
    classifier = Classifier(config, metrics, batcher)
    classifier.model_error = error
    return classifier
