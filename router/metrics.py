"""Prometheus metrics of the router, defined once.

The build's alert rules and Grafana dashboard (pipeline/deploy) use these exact names:
change a name here and there together. Labels never carry request text.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120,
)  # fmt: skip
CLASSIFY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.5, 1)


class RouterMetrics:
    """One set per router process (tests make their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._answers: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "edgepack_router_requests", "Routed requests",
            ["route", "sensitivity", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "edgepack_router_request_seconds", "End-to-end request latency",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.classify_seconds = Histogram(
            "edgepack_router_classify_seconds", "Sensitivity classification time",
            buckets=CLASSIFY_BUCKETS, registry=r,
        )  # fmt: skip
        self.classifier_failures = Counter(
            "edgepack_router_classifier_failures",
            "Classifier errors/timeouts that failed closed (request made confidential)",
            registry=r,
        )
        self.in_flight = Gauge(
            "edgepack_router_in_flight", "Requests being handled by the router", registry=r
        )
        self.upstream_in_flight = Gauge(
            "edgepack_router_upstream_in_flight", "Outstanding requests per upstream",
            ["pool", "upstream"], registry=r,
        )  # fmt: skip
        self.upstream_healthy = Gauge(
            "edgepack_router_upstream_healthy", "1 if the upstream takes traffic",
            ["pool", "upstream"], registry=r,
        )  # fmt: skip
        self.breaker_open = Gauge(
            "edgepack_router_breaker_open", "1 while the upstream is ejected (breaker open)",
            ["pool", "upstream"], registry=r,
        )  # fmt: skip
        self.confidential_route_usable = Gauge(
            "edgepack_router_confidential_route_usable",
            "1 if at least one on-prem upstream can take confidential requests", registry=r,
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
        self.cache = Counter(
            "edgepack_router_cache", "Cache lookups", ["result"], registry=r
        )  # result: hit|miss|bypass|error
        self.fallbacks = Counter(
            "edgepack_router_fallbacks", "Requests sent to the fallback pool",
            ["sensitivity"], registry=r,
        )  # fmt: skip
        # Added with issue 7 (admission, breakers, drain): new names only.
        self.queue_depth = Gauge(
            "edgepack_router_queue_depth", "Requests waiting for an admission slot",
            ["pool", "tier"], registry=r,
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "edgepack_router_pool_in_use", "Admission slots held per pool", ["pool"], registry=r
        )
        self.breaker_ejections = Counter(
            "edgepack_router_breaker_ejections", "Times an upstream was ejected (breaker opened)",
            ["pool", "upstream"], registry=r,
        )  # fmt: skip
        self.upstream_attempts = Counter(
            "edgepack_router_upstream_attempts", "Calls made to upstreams, retries included",
            ["pool", "outcome"], registry=r,
        )  # fmt: skip
        self.draining = Gauge(
            "edgepack_router_draining", "1 after SIGTERM while in-flight requests finish",
            registry=r,
        )  # fmt: skip
        self.config_reloads = Counter(
            "edgepack_router_config_reloads", "SIGHUP config reloads", ["result"], registry=r
        )  # result: ok|rejected

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
