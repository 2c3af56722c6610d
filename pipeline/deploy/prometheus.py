"""Prometheus alert rules and scrape config for the router (metric names: router/metrics.py).

Counters are exposed with a `_total` suffix and histograms as `_bucket/_sum/_count`;
tests check every name used here against a live `RouterMetrics` registry, and run
`promtool check rules` / `promtool test rules` on the output.
"""

from __future__ import annotations

import yaml

from pipeline.deploy.spec import DeployConfig

JOB = "edgepack-router"
RULE_FILES = ("alerts.yaml", "forecast.yaml")
BY = "namespace"
"""Alerts aggregate over a namespace's router pods (the scrape config adds the label)."""


def _rule(name: str, expr: str, wait: str, severity: str, summary: str, text: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {"severity": severity, "service": JOB},
        "annotations": {"summary": summary, "description": text},
    }


def _ratio(numerator: str, denominator: str) -> str:
    return f"sum by ({BY}) ({numerator})\n/\nclamp_min(sum by ({BY}) ({denominator}), 1e-9)"


def alert_rules(deploy: DeployConfig) -> dict:
    """The rule groups; thresholds from the recipe's `deploy.alerts`."""
    a = deploy.alerts
    requests = "rate(edgepack_router_requests_total[5m])"
    shed = _ratio("rate(edgepack_router_shed_total[5m])", requests)
    busy = _ratio('rate(edgepack_router_requests_total{status=~"429|503"}[5m])', requests)
    p99 = (
        "histogram_quantile(0.99, sum by (namespace, route, le) "
        "(rate(edgepack_router_request_seconds_bucket[5m])))"
    )
    rules = [
        _rule("EdgepackRouterShedding", f"{shed}\n> {a.shed_ratio:g}", "10m", "warning",
              "Router sheds more than {{ $value | humanizePercentage }} of requests",
              "Admission control refuses requests (429/503 + Retry-After): pools are "
              "saturated. Scale the pools or the HPA, or lower low-tier traffic."),
        _rule("EdgepackRouterBusy", f"{busy}\n> {a.shed_ratio:g}", "10m", "warning",
              "{{ $value | humanizePercentage }} of router answers are 429/503",
              "Callers see 'busy' answers (shed, no usable route, upstream saturated)."),
        _rule("EdgepackRouterP99LatencyHigh", f"{p99}\n> {a.p99_seconds:g}", "10m", "warning",
              "p99 latency of route {{ $labels.route }} is {{ $value | humanizeDuration }}",
              f"End-to-end p99 above {a.p99_seconds:g}s for 10 minutes on this route."),
        _rule("EdgepackRouterBreakerOpen",
              f"max by ({BY}, pool, upstream) (edgepack_router_breaker_open) > 0", "5m",
              "warning", "Upstream {{ $labels.pool }}/{{ $labels.upstream }} is ejected",
              "Its circuit breaker has stayed open for 5 minutes: the upstream keeps failing "
              "its probes."),
        _rule("EdgepackRouterNoConfidentialRoute",
              "edgepack_router_confidential_route_usable == 0", "1m", "critical",
              "No on-prem upstream can take confidential requests",
              "Confidential requests are answered 503 (they never go to the cloud) until an "
              "on-prem upstream is healthy again."),
        _rule("EdgepackRouterClassifierFailClosed",
              f"sum by ({BY}) (increase(edgepack_router_classifier_failures_total[10m]))"
              f"\n> {a.classifier_failures}", "0m", "warning",
              "{{ $value }} classifications failed closed in 10 minutes",
              "Classifier errors/timeouts made requests confidential (on-prem only); check "
              "the model files and the router's CPU."),
        _rule("EdgepackRouterRetryBudgetExhausted",
              f"sum by ({BY}, pool) (rate(edgepack_router_retry_budget_exhausted_total[5m]))"
              f"\n> {a.retry_budget_exhausted_per_s:g}", "10m", "warning",
              "Retry budget of pool {{ $labels.pool }} is spent",
              "Failures exceed what the retry budget may retry: the pool is failing, not "
              "flaky."),
        _rule("EdgepackRouterConfigReloadRejected",
              f"sum by ({BY}) (increase(edgepack_router_config_reloads_total"
              f'{{result="rejected"}}[15m])) > 0', "0m", "warning",
              "A router config reload (SIGHUP) was rejected",
              "The new router.yaml failed validation; the old config stays in force."),
        _rule("EdgepackRouterDown", f'up{{job="{JOB}"}} == 0', "5m", "critical",
              "Router {{ $labels.pod }} cannot be scraped",
              "The sidecar's /metrics does not answer; its app has no route."),
    ]  # fmt: skip
    return {"groups": [{"name": JOB, "rules": rules}]}


def scrape_config(deploy: DeployConfig) -> dict:
    """A Prometheus config (valid for `promtool check config`) scraping the router Service."""
    keep = [
        ("__meta_kubernetes_service_name", deploy.name),
        ("__meta_kubernetes_endpointslice_port_name", "router"),
    ]
    relabel = [{"source_labels": [src], "regex": value, "action": "keep"} for src, value in keep]
    relabel += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": list(RULE_FILES),
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "kubernetes_sd_configs": [
                    {"role": "endpointslice", "namespaces": {"names": [deploy.namespace]}}
                ],
                "relabel_configs": relabel,
            }
        ],
    }


class _Dumper(yaml.SafeDumper):
    """PromQL over several lines as `|` blocks, so rules read like PromQL."""


_Dumper.add_representer(
    str,
    lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None),
)


def render(data: dict, header: str) -> str:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
