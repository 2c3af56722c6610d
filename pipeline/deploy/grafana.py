"""Grafana dashboard for the router: traffic, latency, pressure, breakers, cache, forecast.

Panels are declared as (title, kind, queries) rows and laid out on Grafana's 24-column
grid; every query uses only metric names from router/metrics.py (tests check that and
parse each query with promtool).
"""

from __future__ import annotations

from typing import NamedTuple

from pipeline.deploy.forecast import BY, REPLICAS, REQUESTS
from pipeline.deploy.prometheus import JOB

NS = '{namespace=~"$namespace"}'
RATE = "$__rate_interval"


def _sel(extra: str = "") -> str:
    return '{namespace=~"$namespace"' + (f",{extra}" if extra else "") + "}"


HIT = _sel('result="hit"')
LOOKUP = _sel('result=~"hit|miss"')


def _recorded(prefix: str) -> str:
    """A forecast rule whatever the recipe's horizon (its name ends in `<N>m`)."""
    return f'{{__name__=~"{prefix}[0-9]+m",{BY}=~"$namespace"}}'


def _quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{NS}[{RATE}])))"


class Panel(NamedTuple):
    title: str
    kind: str  # timeseries | stat
    targets: list[tuple[str, str]]  # (legend, expr)
    unit: str = "short"
    width: int = 12


PANELS: list[Panel] = [
    Panel("Requests by route", "timeseries",
          [("{{route}}", f"sum by (route) (rate(edgepack_router_requests_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Requests by sensitivity", "timeseries",
          [("{{sensitivity}}",
            f"sum by (sensitivity) (rate(edgepack_router_requests_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Latency by route (p50 / p90 / p99)", "timeseries",
          [(f"p{int(q * 100)} {{{{route}}}}",
            _quantile(q, "edgepack_router_request_seconds", "route")) for q in (0.5, 0.9, 0.99)],
          "s"),
    Panel("Answers by status", "timeseries",
          [("{{status}}", f"sum by (status) (rate(edgepack_router_requests_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Shed rate (admission control)", "timeseries",
          [("{{pool}} {{tier}} {{reason}}",
            f"sum by (pool, tier, reason) (rate(edgepack_router_shed_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Retry rate and budget", "timeseries",
          [("retries {{pool}}", f"sum by (pool) (rate(edgepack_router_retries_total{NS}[{RATE}]))"),
           ("budget exhausted {{pool}}",
            f"sum by (pool) (rate(edgepack_router_retry_budget_exhausted_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Breaker open (1 = ejected)", "timeseries",
          [("{{pool}}/{{upstream}}",
            f"max by (pool, upstream) (edgepack_router_breaker_open{NS})")]),
    Panel("Upstream in flight", "timeseries",
          [("{{pool}}/{{upstream}}",
            f"sum by (pool, upstream) (edgepack_router_upstream_in_flight{NS})")]),
    Panel("Cache hit rate", "stat",
          [("hit rate",
            f"sum(rate(edgepack_router_cache_total{HIT}[{RATE}]))\n/\n"
            f"clamp_min(sum(rate(edgepack_router_cache_total{LOOKUP}[{RATE}])), 1e-9)")],
          "percentunit", 6),
    Panel("Confidential route usable", "stat",
          [("usable", f"min(edgepack_router_confidential_route_usable{NS})")], "short", 6),
    Panel("Classifier fail-closed (per 10 min)", "stat",
          [("failures", f"sum(increase(edgepack_router_classifier_failures_total{NS}[10m]))")],
          "short", 6),
    Panel("In flight (router)", "stat",
          [("in flight", f"sum(edgepack_router_in_flight{NS})")], "short", 6),
    Panel("Classification time (p50 / p99)", "timeseries",
          [(f"p{int(q * 100)}",
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(edgepack_router_classify_seconds_bucket{NS}[{RATE}])))") for q in (0.5, 0.99)],
          "s"),
    Panel("Score cache hit rate (windows the model did not read again)", "timeseries",
          [("hit rate",
            f"sum(rate(edgepack_router_score_cache_total{HIT}[{RATE}]))\n/\n"
            f"clamp_min(sum(rate(edgepack_router_score_cache_total{LOOKUP}[{RATE}])), 1e-9)")],
          "percentunit"),
    Panel("Queue depth by tier", "timeseries",
          [("{{pool}} {{tier}}", f"sum by (pool, tier) (edgepack_router_queue_depth{NS})")]),
    Panel("Upstream calls per request (retry amplification)", "timeseries",
          [("calls / request",
            f"sum(rate(edgepack_router_upstream_attempts_total{NS}[{RATE}]))\n/\n"
            f"clamp_min(sum(rate(edgepack_router_requests_total{NS}[{RATE}])), 1e-9)")]),
    Panel("Breaker ejections", "timeseries",
          [("{{pool}}/{{upstream}}", f"sum by (pool, upstream) "
            f"(increase(edgepack_router_breaker_ejections_total{NS}[{RATE}]))")]),
    Panel("Pods draining", "timeseries",
          [("draining", f"sum(edgepack_router_draining{NS})")]),
    Panel("Fallbacks by sensitivity", "timeseries",
          [("{{sensitivity}}",
            f"sum by (sensitivity) (rate(edgepack_router_fallbacks_total{NS}[{RATE}]))")],
          "reqps"),
    Panel("Request rate: now and forecast (prometheus/forecast.yaml)", "timeseries",
          [("now", f"sum({REQUESTS}{NS})"),
           ("forecast", f"sum({_recorded(REQUESTS + '_forecast')})")], "reqps"),
    Panel("Replicas: the forecast asks, routers answering", "timeseries",
          [("forecast", f"sum({_recorded(REPLICAS)})"),
           ("routers up", f'sum(up{{job="{JOB}",{BY}=~"$namespace"}})')]),
]  # fmt: skip


def _panel(index: int, panel: Panel, x: int, y: int) -> dict:
    height = 4 if panel.kind == "stat" else 8
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": expr,
                "legendFormat": legend,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            }
            for i, (legend, expr) in enumerate(panel.targets)
        ],
    }


def _layout(panels: list[Panel]) -> list[dict]:
    """Left to right, wrapping at 24 columns; a row is as tall as its tallest panel."""
    out, x, y, row_h = [], 0, 0, 0
    for index, panel in enumerate(panels):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        placed = _panel(index, panel, x, y)
        out.append(placed)
        x += panel.width
        row_h = max(row_h, placed["gridPos"]["h"])
    return out


def dashboard(recipe: str) -> dict:
    """The dashboard JSON model (import it, or provision it from a ConfigMap)."""
    return {
        "uid": f"edgepack-router-{recipe}"[:40],
        "title": f"edgepack router ({recipe})",
        "tags": ["edgepack", "router"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "namespace",
                    "type": "query",
                    "label": "Namespace",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(edgepack_router_requests_total, namespace)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                },
            ]
        },
        "panels": _layout(PANELS),
    }
