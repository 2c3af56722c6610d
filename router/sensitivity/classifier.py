"""Combine the header rule, the detectors and the model into one `Decision`; fail closed.

Order is cheapest first, and each later step runs only if nothing earlier decided:
header (confidential, or a trusted caller's public) → opaque body → detectors → model.
Detectors and model read the request's strings normalised and decoded (views.py); the
model reads every window of them (windows.py), up to `scan_tokens` tokens: a request with
more is confidential ("too_long"), as nothing past that was read. A long request is read a
piece at a time in a worker thread (`read_long`), and only until it is decided: its labels
are those of the first piece a detector fires on. Scores of what was read before (a
resent message's windows) come from the score cache (scores.py), so the model runs only
on what is new.
A model that is configured but missing, failing or late makes the request confidential
and counts `edgepack_router_classifier_failures`. Its time limit is `timeout_ms` per
`max_batch` windows still to score (one run's worth), so a long prompt is given the time it
needs.
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
from router.sensitivity.policy.rules import PolicyRules
from router.sensitivity.prefilter import Prefilter
from router.sensitivity.scores import ScoreCache
from router.sensitivity.windows import Window, Windows, scan_budget

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
        self.policy = PolicyRules(config.sensitivity)  # the organisation's own entries
        self.callers = CallerTrust(config)
        self.batcher = batcher
        self.scan_tokens = scan_tokens
        self.model_error: str | None = None  # set when a configured model failed to load
        self.stamp: tuple = ()  # the model files' `file_stamp` when they were loaded
        self._scanner: ThreadPoolExecutor | None = None  # one thread: big scans queue up
        self.score_cache = ScoreCache(config.model.cache_entries if self._model_on() else 0)

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

    def scan(self, texts: Sequence[str]) -> tuple[str, ...]:
        """Labels of every detector and policy entry that fires on any text (rules only,
        synchronous): one RE2 pass per text picks the detectors that can fire, only those
        run (prefilter.py). Allowed values are blanked only once something fired."""
        labels = self._scan_once(texts)
        masked = self.policy.masked(texts) if labels else None
        return labels if masked is None else self._scan_once(masked)

    def _scan_once(self, texts: Sequence[str]) -> tuple[str, ...]:
        return self._prefilter.scan(texts) + self.policy.scan(texts)

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
        order = [*self._prefilter.labels, *self.policy.labels]
        return tuple(label for label in order if label in found)

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
        self,
        items: Sequence[str | Window],
        threshold: float,
        timeout_ms: float,
        deadline: float = math.inf,
    ) -> Verdict:
        """Confidential if any item (window) scores at or above `threshold` ("model"), or passes
        a topic's threshold ("topic:NAME"): cached scores first, then the model on the others,
        in time (by `timeout_ms` per run's worth, and by the request's `deadline`)."""
        if self.batcher is None or self.model_error is not None:
            self.metrics.classifier_failures.inc()
            return CONFIDENTIAL, ("classifier_error",)
        cached, fresh = self._lookup({self.score_cache.key(item): item for item in items})
        verdict = self._verdict(cached, threshold)
        if verdict[0] == CONFIDENTIAL or not fresh:  # decided, or all cached / nothing to read
            return verdict
        runs = math.ceil(len(fresh) / self.batcher.max_batch)
        try:
            scores = await asyncio.wait_for(
                asyncio.gather(*(self._score(key, item, len(fresh)) for key, item in fresh)),
                min(timeout_ms * runs / 1000, _left(deadline)),
            )
        except Exception as exc:  # timeouts and runtime errors alike: fail closed
            self.metrics.classifier_failures.inc()
            LOG.warning("classifier failed closed", extra={"fields": {"error": type(exc).__name__}})
            return CONFIDENTIAL, ("classifier_error",)
        return self._verdict(scores, threshold)

    def _verdict(self, scores: Sequence[float], threshold: float) -> Verdict:
        """Public only when every score is below `threshold` (a NaN is not: fail closed) and no
        window passed a topic."""
        reasons = () if all(score < threshold for score in scores) else ("model",)
        reasons += self._topics_passed(scores)
        return (CONFIDENTIAL, reasons) if reasons else (PUBLIC, ())

    def _topics_passed(self, scores: Sequence[float]) -> tuple[str, ...]:
        """`topic:NAME` of each topic a window passed (topics.py `Score`), in config order."""
        passed = {topic for score in scores for topic in getattr(score, "topics", ())}
        return tuple(f"topic:{self.config.sensitivity.topics[t].name}" for t in sorted(passed))

    def _lookup(
        self, items: dict[bytes, str | Window]
    ) -> tuple[list[float], list[tuple[bytes, str | Window]]]:
        """The cached scores (topics included: the cache keeps `Score`s), and the items the
        cache has none for."""
        cached = [self.score_cache.get(key) for key in items]
        fresh = [pair for pair, score in zip(items.items(), cached, strict=True) if score is None]
        self.metrics.child(self.metrics.score_cache, "hit").inc(len(items) - len(fresh))
        self.metrics.child(self.metrics.score_cache, "miss").inc(len(fresh))
        return [score for score in cached if score is not None], fresh

    async def _score(self, key: bytes, item: str | Window, cost: int) -> float:
        """The model's score, kept in the cache as soon as it comes (a request that times
        out still leaves the scores it got for its next turn); `cost`: the request's items
        to score (batching.py)."""
        assert self.batcher is not None
        score = await self.batcher.score(item, cost)
        self.score_cache.put(key, score)
        return score


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
        OnnxSensitivityModel.load(model, config.sensitivity.topics)
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
                OnnxSensitivityModel.load(model, config.sensitivity.topics),
                model.max_batch,
                model.max_wait_ms / 1000,
                model.concurrent_runs,
            )
        except Exception as exc:
            error = _why(exc)
            LOG.error("classifier model not loaded", extra={"fields": {"error": error}})
    classifier = Classifier(config, metrics, batcher, scan_budget(max_body_bytes))
    classifier.model_error = error
    classifier.stamp = stamp
    return classifier
