"""Prometheus metrics of the router, defined once.

The build's alert rules and Grafana dashboard (pipeline/deploy) use these exact names:
change a name here and there together. Labels never carry request text.

With several workers (router/workers.py) each is its own process, so the numbers live in
prometheus_client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the supervisor
before any worker imports prometheus_client) and a scrape, whichever worker answers it,
sums them. Each gauge says how its workers' values combine (`multiprocess_mode`). The
per-request metrics and the gauges read by a function reach the files once a second and
when the worker answers a scrape or stops (`publish`), not on every update.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import values as client_values
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # where each worker writes its counts


LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120,
)  # fmt: skip
CLASSIFY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.5, 1)


PUBLISH_INTERVAL_S = 1.0  # how stale a worker's numbers may be in a multiprocess scrape


class RouterMetrics:
    """One set per router process (tests make their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        self._watched: dict[Any, Callable[[], float]] = {}  # gauge → its latest function
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._answers: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Updated by every request: LoopCounter / LoopHistogram (below), not prometheus_client's.
        self.requests = LoopCounter(
            "edgepack_router_requests", "Routed requests",
            ("route", "sensitivity", "status"), registry=r,
        )  # fmt: skip
        self.latency = LoopHistogram(
            "edgepack_router_request_seconds", "End-to-end request latency",
            ("route",), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        classify = LoopHistogram(
            "edgepack_router_classify_seconds", "Sensitivity classification time",
            (), buckets=CLASSIFY_BUCKETS, registry=r,
        )  # fmt: skip
        self.classify_seconds = classify.labels()
        self.classifier_failures = Counter(
            "edgepack_router_classifier_failures",
            "Classifier errors/timeouts that failed closed (request made confidential)",
            registry=r,
        )
        self.in_flight = Gauge(
            "edgepack_router_in_flight", "Requests being handled by the router",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.upstream_in_flight = Gauge(
            "edgepack_router_upstream_in_flight", "Outstanding requests per upstream",
            ["pool", "upstream"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.upstream_healthy = Gauge(
            "edgepack_router_upstream_healthy", "1 if the upstream takes traffic",
            ["pool", "upstream"], registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.breaker_open = Gauge(
            "edgepack_router_breaker_open", "1 while the upstream is ejected (breaker open)",
            ["pool", "upstream"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.confidential_route_usable = Gauge(
            "edgepack_router_confidential_route_usable",
            "1 if at least one on-prem upstream can take confidential requests",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.shed = Counter(
            "edgepack_router_shed", "Requests refused by admission control",
            ["pool", "tier", "reason"], registry=r,
        )  # fmt: skip
        self.retries = Counter("edgepack_router_retries", "Upstream retries", ["pool"], registry=r)
        self.retry_budget_exhausted = Counter(
            "edgepack_router_retry_budget_exhausted",
            "Retries skipped because the retry budget was spent", ["pool"], registry=r,
        )  # fmt: skip
        self.cache = LoopCounter(
            "edgepack_router_cache", "Cache lookups", ("result",), registry=r
        )  # result: hit|miss|bypass|error
        self.score_cache = LoopCounter(
            "edgepack_router_score_cache", "Model score cache lookups, one per window",
            ("result",), registry=r,
        )  # fmt: skip  # result: hit|miss
        self.score_cache_entries = Gauge(
            "edgepack_router_score_cache_entries", "Window scores held in the score cache",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.fallbacks = Counter(
            "edgepack_router_fallbacks", "Requests sent to the fallback pool",
            ["sensitivity"], registry=r,
        )  # fmt: skip
        # Admission, breakers, drain.
        self.queue_depth = Gauge(
            "edgepack_router_queue_depth", "Requests waiting for an admission slot",
            ["pool", "tier"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "edgepack_router_pool_in_use", "Admission slots held per pool", ["pool"],
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.breaker_ejections = Counter(
            "edgepack_router_breaker_ejections", "Times an upstream was ejected (breaker opened)",
            ["pool", "upstream"], registry=r,
        )  # fmt: skip
        self.upstream_attempts = LoopCounter(
            "edgepack_router_upstream_attempts", "Calls made to upstreams, retries included",
            ("pool", "outcome"), registry=r,
        )  # fmt: skip
        self.draining = Gauge(
            "edgepack_router_draining", "1 after SIGTERM while in-flight requests finish",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.streams_broken = Counter(
            "edgepack_router_streams_broken", "Streamed answers cut short by their upstream "
            "(closed, silent, bad or oversized chunk, model stream error)", ["pool"], registry=r,
        )  # fmt: skip
        self.config_reloads = Counter(
            "edgepack_router_config_reloads", "SIGHUP config reloads", ["result"], registry=r
        )  # result: ok|rejected
        self._loop = [
            self.requests, self.latency, classify, self.cache, self.score_cache,
            self.upstream_attempts,
        ]  # fmt: skip

    def watch(self, gauge: Any, value: Callable[[], float]) -> None:
        """`gauge` reports `value()`: read when scraped (prometheus_client's set_function),
        or, with several workers, written to the worker's file by `publish` (the
        multiprocess collector reads only files)."""
        if self.multiprocess_dir:
            self._watched[gauge] = value  # a reloaded pool's function replaces the old one's
            gauge.set(value())
        else:
            gauge.set_function(value)

    def publish(self) -> None:
        """Write this worker's per-request metrics and watched gauges to its files
        (several workers; nothing to do with one)."""
        if not self.multiprocess_dir:
            return
        for gauge, value in self._watched.items():
            gauge.set(value())
        for metric in self._loop:
            metric.publish()

    async def publish_forever(self) -> None:
        """With several workers, keep this worker's numbers in the files at most a second
        old."""
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            self.publish()

    def exposition(self) -> bytes:
        """The scrape's text: this process's registry, or every worker's files summed."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        self.publish()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self.multiprocess_dir)
        return generate_latest(registry)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, resolved once per label set: on the request path
        `labels()` costs more than the inc/observe that follows it."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def answer_children(self, route: str, sensitivity: str, status: int) -> tuple[Any, Any]:
        """The `requests` and `latency` children every answer updates, found with one lookup
        per answer (a closed set of label values: routes × sensitivities × statuses)."""
        key = (route, sensitivity, status)
        pair = self._answers.get(key)
        if pair is None:
            requests = self.child(self.requests, route, sensitivity, str(status))
            pair = self._answers[key] = (requests, self.child(self.latency, route))
        return pair


class LoopCounter:
    """A labelled counter with prometheus_client's exposition (`NAME_total`), for the
    counters every request updates. prometheus_client's `inc()` checks its arguments and
    takes a lock per update: the five updates of a request cost 28.5k instructions, ~6% of
    the whole router's (benchmarks/router/instructions.py). Here an update is one addition
    to a slot; the registry reads the values when scraped, or, with several workers,
    `publish` copies them to the worker's multiprocess file.

    Only the event loop's thread updates these (every request-path update runs there), so
    no lock is needed. `_created` samples are not exported."""

    kind = "counter"  # its multiprocess file

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        self._slots: dict[tuple[str, tuple[str, ...], str | None], Any] = {}
        registry.register(self)

    def labels(self, *values: str, **named: str) -> Any:
        """The child for these label values (positional, or all by name, as in
        prometheus_client)."""
        if named:
            if values or set(named) != set(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {named}")
            values = tuple(named[n] for n in self.labelnames)
        values = tuple(str(v) for v in values)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child

    def _new_child(self) -> Any:
        return _Count()

    def publish(self) -> None:
        """Each child's count into this worker's multiprocess file, as prometheus_client's
        Counter keeps it there."""
        for labels, child in list(self._children.items()):
            self._file_value("_total", labels).set(child.value)

    def _file_value(self, suffix: str, labels: tuple[str, ...], le: str | None = None) -> Any:
        """The multiprocess file's slot for one sample, made once."""
        key = (suffix, labels, le)
        slot = self._slots.get(key)
        if slot is None:
            names = self.labelnames if le is None else (*self.labelnames, "le")
            labels = labels if le is None else (*labels, le)
            slot = self._slots[key] = client_values.ValueClass(
                self.kind, self.name, self.name + suffix, names, labels, self.documentation
            )
        return slot

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, child in list(self._children.items()):
            family.add_metric(labels, child.value)
        yield family


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram(LoopCounter):
    """A labelled histogram with prometheus_client's exposition (`_bucket`, `_count`,
    `_sum`): an observation adds to one bucket (found by bisection) and to the sum; the
    cumulative counts are made when scraped. Same rules as `LoopCounter`."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self.edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> _Observed:
        return _Observed(self.bounds)

    def publish(self) -> None:
        """Each bucket's own count and the sum, as prometheus_client's Histogram keeps them
        in a multiprocess file (the collector makes them cumulative and adds `_count`)."""
        for labels, child in list(self._children.items()):
            for edge, count in zip(self.edges, child.buckets, strict=True):
                self._file_value("_bucket", labels, edge).set(count)
            self._file_value("_sum", labels).set(child.sum)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, child in list(self._children.items()):
            cumulative, total = [], 0
            for edge, count in zip(self.edges, child.buckets, strict=True):
                total += count
                cumulative.append((edge, total))
            family.add_metric(labels, cumulative, sum_value=child.sum)
        yield family


class _Observed:
    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        """Prometheus buckets hold observations ≤ their bound: the first such bound."""
        self.buckets[bisect_left(self.bounds, amount)] += 1
        self.sum += amount
