"""The load forecast (deploy/prometheus/forecast.yaml) and the scaler that reads it.

The recording rules run in `promtool test rules` on synthetic series: a morning ramp, a
daily cycle, a sudden spike and flat load. The KEDA ScaledObject is validated against
KEDA's own CRD schema (vendored in tests/fixtures/keda/), the HPA fallback against
Kubernetes' schemas. The simulation's numpy copy of the rules (benchmarks/autoscaling)
is checked against promtool on the same series.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import numpy as np
import pytest
import yaml

from pipeline.deploy import forecast, grafana, k8s, prometheus
from pipeline.deploy.spec import Autoscaling, DeployConfig
from pipeline.recipe import load_recipe
from router.metrics import RouterMetrics

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "autoscaling"))
import model  # noqa: E402  (the simulation's copy of the rules)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make test` installs Debian's prometheus"
)
KEDA_CRD = ROOT / "tests" / "fixtures" / "keda" / "keda.sh_scaledobjects.yaml"
KEDA_PROMETHEUS_KEYS = {
    "serverAddress", "query", "queryParameters", "threshold", "activationThreshold",
    "namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout",
    "identityOwner",
}  # fmt: skip
"""The trigger metadata KEDA's prometheus scaler parses (pkg/scalers/prometheus_scaler.go)."""
NS = 'namespace="ns"'
DAY = 24 * 60


@pytest.fixture(scope="module")
def deploy() -> DeployConfig:
    return load_recipe(ROOT / "recipes" / "sensitivity-minilm.yaml").deploy


@pytest.fixture(scope="module")
def scaling(deploy) -> Autoscaling:
    return deploy.autoscaling


def _with_scaling(deploy: DeployConfig, **changes) -> DeployConfig:
    data = deploy.model_dump(mode="json")
    data["autoscaling"].update(changes)
    return DeployConfig.model_validate(data)


# --- promtool on synthetic series --------------------------------------------------------


def counter(rates: list[float]) -> list[float]:
    """A request counter sampled each minute whose rate in minute i is rates[i]."""
    return [0.0, *np.cumsum(np.asarray(rates[1:]) * 60.0)]


def _values(xs) -> str:
    return " ".join(f"{x:.6f}" for x in xs)


def check(tmp_path: Path, scaling: Autoscaling, series: dict[str, list[float]], asserts):
    """Run promtool's unit test: each assert is (minute, boolean PromQL) that must be 1."""
    rules = forecast.recording_rules(scaling)
    (tmp_path / "forecast.yaml").write_text(prometheus.render(rules, "test"))
    tests = [
        {"expr": expr, "eval_time": f"{minute}m",
         "exp_samples": [{"labels": f"{{{NS}}}", "value": 1}]}
        for minute, expr in asserts
    ]  # fmt: skip
    spec = {
        "rule_files": ["forecast.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m",
             "input_series": [{"series": s, "values": _values(v)} for s, v in series.items()],
             "promql_expr_test": tests}
        ],
    }  # fmt: skip
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec, width=10**9))
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def requests_series(rates: list[float]) -> dict[str, list[float]]:
    return {f'edgepack_router_requests_total{{{NS},pod="a",status="200"}}': counter(rates)}


def in_flight_series(values) -> dict[str, list[float]]:
    return {f'edgepack_router_in_flight{{{NS},pod="a"}}': list(values)}


@needs_promtool
def test_rules_pass_promtool_and_read_only_real_metrics(tmp_path, scaling):
    rules = forecast.recording_rules(scaling)
    path = tmp_path / "forecast.yaml"
    path.write_text(prometheus.render(rules, "x"))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    read = set(re.findall(r"(?<![:\w])edgepack_router_[a-z_]+", yaml.safe_dump(rules)))
    assert read == {"edgepack_router_requests_total", "edgepack_router_in_flight"}
    families = {f.name: f.type for f in RouterMetrics().registry.collect()}
    assert families["edgepack_router_requests"] == "counter"  # exposed with _total
    assert families["edgepack_router_in_flight"] == "gauge"


@needs_promtool
def test_forecast_leads_a_morning_ramp_by_ten_minutes(tmp_path, scaling):
    """Flat 300 req/s for an hour, then +10 req/s each minute: the actual rate reaches
    1000 at minute 130; the forecast must be there 10 minutes earlier, and not earlier
    than the horizon allows (it extrapolates the ramp, it does not overshoot it)."""
    horizon = scaling.forecast.horizon_min
    assert horizon >= 10
    rates = [300.0 if m <= 60 else 300.0 + 10 * (m - 60) for m in range(181)]
    reached = 130
    needed = math.ceil(1000 / scaling.requests_per_pod)  # pods for the rate at `reached`
    fc = forecast.forecast_name(forecast.REQUESTS, scaling.forecast)
    check(tmp_path, scaling, requests_series(rates), [
        (reached - 10, f"{forecast.REQUESTS} < bool 1000"),
        (reached - 10, f"{fc} >= bool 1000"),
        (reached - horizon - 3, f"{fc} < bool 1000"),
        (reached - 10, f"{forecast.replicas_name(scaling.forecast)} >= bool {needed}"),
    ])  # fmt: skip


@needs_promtool
def test_seasonal_term_leads_a_daily_step_only_with_yesterday(tmp_path, scaling):
    """In-flight requests jump from 40 to 300 at 09:00 every day (no trend to extrapolate
    before the jump). At 08:50 on day 2 the daily term has scaled up from yesterday's
    09:00; at 08:50 on day 1 there is no yesterday, and the forecast stays at the present."""
    day = [40.0] * DAY
    day[9 * 60 : 18 * 60] = [300.0] * (9 * 60)
    day[18 * 60 : 20 * 60] = list(np.linspace(300, 40, 120))
    before = 8 * 60 + 50
    replicas = forecast.replicas_name(scaling.forecast)
    fc = forecast.forecast_name(forecast.IN_FLIGHT, scaling.forecast)
    top = min(math.ceil(300 / scaling.in_flight_per_pod), scaling.max_replicas)
    check(tmp_path, scaling, in_flight_series(day + day[: 10 * 60]), [
        (before, f"{fc} == bool 40"),
        (before, f"{replicas} == bool {scaling.min_replicas}"),
        (DAY + before, f"{forecast.IN_FLIGHT} == bool 40"),
        (DAY + before, f"{fc} >= bool 300"),
        (DAY + before, f"{replicas} == bool {top}"),
    ])  # fmt: skip


@needs_promtool
def test_spike_scales_at_once_and_the_forecast_settles_after_it(tmp_path, scaling):
    """500 req/s, a step to 5000 for 20 minutes, back to 500. The forecast is never below
    the present (pods for the spike as soon as it is seen); 20 minutes after the spike
    the forecast is back within 5% of the flat rate and the replicas at their floor."""
    wide = scaling.model_copy(update={"max_replicas": 50})
    rates = [5000.0 if 60 < m <= 80 else 500.0 for m in range(121)]
    fc = forecast.forecast_name(forecast.REQUESTS, wide.forecast)
    replicas = forecast.replicas_name(wide.forecast)
    check(tmp_path, wide, requests_series(rates), [
        (62, f"{fc} >= bool {forecast.REQUESTS}"),
        (62, f"{replicas} >= bool 25"),
        (100, f"{fc} <= bool 525"),
        (100, f"{replicas} == bool 3"),
    ])  # fmt: skip


@needs_promtool
def test_flat_load_is_not_overshot(tmp_path, scaling):
    """Constant requests: the forecast is the rate itself. In-flight zig-zagging ±10%
    around 30 every minute: the forecast stays within 15% of the mean (smoothing keeps the
    noise from looking like a trend)."""
    noisy = [33.0 if m % 2 else 27.0 for m in range(121)]
    series = requests_series([1000.0] * 121) | in_flight_series(noisy)
    req = forecast.forecast_name(forecast.REQUESTS, scaling.forecast)
    inf = forecast.forecast_name(forecast.IN_FLIGHT, scaling.forecast)
    asserts = [(m, f"abs({req} - 1000) < bool 1e-6") for m in (30, 90, 120)]
    asserts += [(m, f"{inf} <= bool 34.5") for m in range(40, 121, 7)]
    check(tmp_path, scaling, series, asserts)


@needs_promtool
def test_simulation_model_matches_promtool(tmp_path, scaling):
    """benchmarks/autoscaling/model.py computes the same forecast as Prometheus (two days of
    a noisy daily cycle, so smoothing, trend and the seasonal term all count)."""
    rng = np.random.default_rng(7)
    minutes = np.arange(DAY + 12 * 60)
    hour = (minutes % DAY) / 60
    values = np.interp(hour, [0, 7, 10, 18, 22, 24], [20, 20, 200, 200, 30, 20])
    values = np.round(values * (1 + 0.05 * rng.standard_normal(len(minutes))), 3)
    expected = model.forecast(values, scaling.forecast)
    fc = forecast.forecast_name(forecast.IN_FLIGHT, scaling.forecast)
    at = [3, 40, 400, 500, 700, DAY + 400, DAY + 430, DAY + 600, len(minutes) - 1]
    check(tmp_path, scaling, in_flight_series(values), [
        (m, f"abs({fc} - {float(expected[m])!r}) <= bool {1e-9 * max(1.0, expected[m]):.3e}")
        for m in at
    ])  # fmt: skip


# --- the scalers ----------------------------------------------------------------------------


def _strict(schema: dict) -> dict:
    """The CRD's structural schema with unknown fields refused (as kubectl's strict
    field validation does), so a typo is an error rather than silently pruned."""
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if isinstance(v, dict) else v for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        out.setdefault("additionalProperties", False)
    if "items" in schema:
        out["items"] = _strict(schema["items"])
    return out


@pytest.fixture(scope="module")
def keda_schema() -> dict:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return _strict(version["schema"]["openAPIV3Schema"])


def _manifests(deploy: DeployConfig) -> dict[str, dict]:
    rendered = k8s.manifests(deploy, "r", "router: config")
    return {name: yaml.safe_load(k8s.render(*pair)) for name, pair in rendered.items()}


def test_scaled_object_is_the_default_and_validates_against_keda_crd(deploy, keda_schema):
    files = _manifests(deploy)
    assert "50-hpa.yaml" not in files, "KEDA makes its own HPA; two would fight"
    so = files["50-scaledobject.yaml"]
    jsonschema.validate(so, keda_schema)
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == files["30-deployment.yaml"]["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 10)
    trigger = next(t for t in spec["triggers"] if t["type"] == "prometheus")
    assert set(trigger["metadata"]) <= KEDA_PROMETHEUS_KEYS
    assert trigger["metricType"] == "AverageValue" and trigger["metadata"]["threshold"] == "1"
    recorded = {
        r["record"] for r in forecast.recording_rules(deploy.autoscaling)["groups"][0]["rules"]
    }
    rule = forecast.replicas_name(deploy.autoscaling.forecast)
    assert rule in recorded and rule in trigger["metadata"]["query"]
    assert 'namespace="llm-apps"' in trigger["metadata"]["query"]
    assert spec["fallback"]["replicas"] == deploy.replicas


def test_keda_schema_refuses_a_wrong_scaled_object(deploy, keda_schema):
    """The schema check is real: a misspelt field and a bad fallback behaviour fail."""
    so = _manifests(deploy)["50-scaledobject.yaml"]
    typo = {**so, "spec": {**so["spec"], "maxReplicas": 3}}
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(typo, keda_schema)
    bad = {**so, "spec": {**so["spec"], "fallback": {**so["spec"]["fallback"], "behavior": "x"}}}
    with pytest.raises(jsonschema.ValidationError, match="'x' is not one of"):
        jsonschema.validate(bad, keda_schema)


@pytest.mark.parametrize("version", ("1.29.0", "1.37.0"))
def test_hpa_fallback_when_the_recipe_chooses_it(deploy, version):
    files = _manifests(_with_scaling(deploy, scaler="hpa"))
    assert "50-scaledobject.yaml" not in files
    hpa = files["50-hpa.yaml"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    for name, resource in files.items():
        kubernetes_validate.validate(resource, version, strict=True), name


def test_capacity_and_bounds_reach_the_replica_rule(deploy):
    changed = _with_scaling(deploy, requests_per_pod=120, min_replicas=2, max_replicas=7)
    expr = forecast.replicas_expr(changed.autoscaling)
    assert "/ 120" in expr and "/ 32" in expr and expr.endswith(", 2, 7)")
    alone = _with_scaling(deploy, in_flight_per_pod=None).autoscaling
    assert "in_flight" not in forecast.replicas_expr(alone)


def test_prometheus_3_spelling_of_holt_winters(deploy):
    """Prometheus 3 renamed holt_winters (behind promql-experimental-functions); `none`
    needs no feature flag. The promtool here is Prometheus 2 and knows only holt_winters."""
    f = deploy.autoscaling.forecast
    for smoothing in ("double_exponential_smoothing", "none"):
        a = deploy.autoscaling.model_copy(
            update={"forecast": f.model_copy(update={"smoothing": smoothing})}
        )
        text = yaml.safe_dump(forecast.recording_rules(a))
        assert ("holt_winters" in text) is False
        assert ("double_exponential_smoothing(" in text) is (smoothing != "none")


def test_dashboard_reads_the_recorded_forecasts(scaling):
    """The dashboard's forecast panels select recorded names by a horizon-free pattern;
    each pattern matches a rule forecast.yaml records."""
    recorded = {r["record"] for r in forecast.recording_rules(scaling)["groups"][0]["rules"]}
    exprs = " ".join(t["expr"] for p in grafana.dashboard("x")["panels"] for t in p["targets"])
    patterns = re.findall(r'__name__=~"([^"]+)"', exprs)
    assert len(patterns) == 2
    for pattern in patterns:
        assert [name for name in recorded if re.fullmatch(pattern, name)], pattern
    assert forecast.REQUESTS in exprs
