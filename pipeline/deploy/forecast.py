"""Prometheus recording rules that forecast the router's load `horizon_min` minutes ahead.

A pod that starts when the rush arrives is late by its start-up time, so the scaler reads
a forecast instead of the present. Per namespace, for the request rate and the in-flight
requests, the forecast is the largest of:
- the present value (never scale below what is needed now),
- a linear trend: `predict_linear` over the last `trend_min` of the series, smoothed first
  by Holt-Winters over `window_min` (a short fit reacts within minutes, the smoothing keeps
  its noise from turning into pods),
- per season (1d, 7d): now + how much the series rose over the next horizon one period ago,
  both ends averaged over the same `trend_min` (noise cancels, a step stays a step).
The replica rule divides each forecast by what one pod serves, takes the larger, and
bounds it by min/max replicas; the KEDA ScaledObject scales on that number (k8s.py).
"""

from __future__ import annotations

from pipeline.deploy.spec import Autoscaling, Forecast

BY = "namespace"
INTERVAL = "1m"
"""The group's evaluation interval: smoothing factors and windows count samples of it."""
REQUESTS = f"{BY}:edgepack_router_requests:rate2m"
IN_FLIGHT = f"{BY}:edgepack_router_in_flight:sum"
REPLICAS = f"{BY}:edgepack_router_replicas:forecast"
"""Recorded names end in the horizon: `<REPLICAS>15m`, `<REQUESTS>_forecast15m`."""
SEASON_MIN = {"1d": 24 * 60, "7d": 7 * 24 * 60}


def forecast_name(base: str, f: Forecast) -> str:
    return f"{base}_forecast{f.horizon_min}m"


def replicas_name(f: Forecast) -> str:
    return f"{REPLICAS}{f.horizon_min}m"


def _record(name: str, expr: str) -> dict:
    return {"record": name, "expr": expr}


def _tagged(expr: str, label: str, value: str) -> str:
    """The same series with one more label, so `or` keeps every part for `max by`."""
    return f'label_replace({expr}, "{label}", "{value}", "", "")'


def _max_of(parts: dict[str, str], label: str) -> str:
    tagged = "\n  or ".join(_tagged(expr, label, key) for key, expr in parts.items())
    return f"max by ({BY}) (\n  {tagged}\n)"


def series_rules(base: str, f: Forecast) -> list[dict]:
    """Smoothing, trend, seasonal terms and their maximum for one recorded base series."""
    window, horizon = f"{f.window_min}m", f.horizon_min
    rules, fitted = [], base
    if f.smoothing != "none":
        fitted = f"{base}_smoothed"
        smooth = f"{f.smoothing}({base}[{window}], {f.smoothing_factor:g}, {f.trend_factor:g})"
        rules.append(_record(fitted, smooth))
    linear = f"{base}_linear{horizon}m"
    trend = f"predict_linear({fitted}[{f.trend_min}m], {horizon * 60})"
    rules.append(_record(linear, f"clamp_min({trend}, 0)"))
    parts = {"now": base, "linear": linear}
    for season in f.seasons:
        period = SEASON_MIN[season]
        rise = (
            f"avg_over_time({base}[{f.trend_min}m] offset {period - horizon}m)\n"
            f"- avg_over_time({base}[{f.trend_min}m] offset {period}m)"
        )
        name = f"{base}_seasonal{season}_{horizon}m"
        rules.append(_record(name, f"clamp_min(\n{base}\n+ ({rise}), 0)"))
        parts[season] = name
    rules.append(_record(forecast_name(base, f), _max_of(parts, "part")))
    return rules


def replicas_expr(a: Autoscaling) -> str:
    """Pods needed for the forecast load: per-pod capacity, bounded by min/max replicas."""
    f = a.forecast
    need = {"requests": f"{forecast_name(REQUESTS, f)} / {a.requests_per_pod:g}"}
    if a.in_flight_per_pod is not None:
        need["in_flight"] = f"{forecast_name(IN_FLIGHT, f)} / {a.in_flight_per_pod:g}"
    return f"clamp(ceil({_max_of(need, 'by')}), {a.min_replicas}, {a.max_replicas})"


def recording_rules(a: Autoscaling) -> dict:
    """The rule group (promtool-checked); evaluated every minute."""
    rules = [
        _record(REQUESTS, f"sum by ({BY}) (rate(edgepack_router_requests_total[2m]))"),
        _record(IN_FLIGHT, f"sum by ({BY}) (edgepack_router_in_flight)"),
        *series_rules(REQUESTS, a.forecast),
        *series_rules(IN_FLIGHT, a.forecast),
        _record(replicas_name(a.forecast), replicas_expr(a)),
    ]
    return {"groups": [{"name": "edgepack-router-forecast", "interval": INTERVAL, "rules": rules}]}
