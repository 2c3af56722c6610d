"""The forecast recording rules (pipeline/deploy/forecast.py) evaluated in numpy, per minute.

It follows Prometheus 2's semantics where they change the numbers: a range `[W]` holds the
samples in [t - W, t] (both ends), `holt_winters` starts from the first two samples, and
`predict_linear` fits least squares at the evaluation time. Rules of one group run in
order, so a rule reads what the rules above it recorded at the same minute.
tests/test_deploy_forecast.py checks it against promtool on the same series.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.deploy.forecast import SEASON_MIN
from pipeline.deploy.spec import Autoscaling, Forecast


def holt_winters(values: np.ndarray, sf: float, tf: float) -> float:
    """Prometheus' funcHoltWinters: the smoothed level at the last sample."""
    s0, s1, trend = 0.0, float(values[0]), float(values[1] - values[0])
    for i in range(1, len(values)):
        if i > 1:
            trend = tf * (s1 - s0) + (1 - tf) * trend
        s0, s1 = s1, sf * float(values[i]) + (1 - sf) * (s1 + trend)
    return s1


def predict_linear(minutes: np.ndarray, values: np.ndarray, now: int, ahead_s: float) -> float:
    x = (minutes - now) * 60.0
    slope, intercept = np.polyfit(x, values, 1)
    return float(intercept + slope * ahead_s)


def _window(series: np.ndarray, end: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Minutes and values of the samples in [end - width, end] that exist (not NaN)."""
    if end < 0:
        return np.array([], dtype=int), np.array([])
    minutes = np.arange(max(end - width, 0), end + 1)
    values = series[minutes]
    keep = ~np.isnan(values)
    return minutes[keep], values[keep]


def forecast(base: np.ndarray, f: Forecast) -> np.ndarray:
    """The `_forecast<H>m` rule for every minute of `base` (one sample a minute)."""
    n, w, h = len(base), f.window_min, f.horizon_min
    smoothed = np.full(n, np.nan)
    out = np.full(n, np.nan)
    for t in range(n):
        minutes, values = _window(base, t, w)
        if f.smoothing != "none" and len(values) >= 2:
            smoothed[t] = holt_winters(values, f.smoothing_factor, f.trend_factor)
        fitted = base if f.smoothing == "none" else smoothed
        parts = [base[t]]
        minutes, values = _window(fitted, t, f.trend_min)
        if len(values) >= 2:
            parts.append(max(predict_linear(minutes, values, t, h * 60), 0.0))
        for season in f.seasons:
            p = SEASON_MIN[season]
            _, later = _window(base, t - (p - h), f.trend_min)
            _, earlier = _window(base, t - p, f.trend_min)
            if len(later) and len(earlier):
                parts.append(max(base[t] + later.mean() - earlier.mean(), 0.0))
        out[t] = max(parts)
    return out


def replicas(requests: np.ndarray, in_flight: np.ndarray | None, a: Autoscaling) -> np.ndarray:
    """The replica rule: each forecast ÷ per-pod capacity, the larger, within min/max."""
    need = forecast(requests, a.forecast) / a.requests_per_pod
    if in_flight is not None and a.in_flight_per_pod is not None:
        need = np.fmax(need, forecast(in_flight, a.forecast) / a.in_flight_per_pod)
    return np.array([min(max(math.ceil(x), a.min_replicas), a.max_replicas) for x in need])
