"""The request path's own counter and histogram (router/metrics.py) expose exactly what
prometheus_client's Counter and Histogram would for the same updates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from router.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram, RouterMetrics


def exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape's lines without `_created` (the request-path metrics do not export it)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


LABELS = st.sampled_from(["onprem", "sagemaker", "cache"])
AMOUNTS = st.one_of(
    st.sampled_from([0.0, *LATENCY_BUCKETS]),  # exactly on a bound: `le` includes it
    st.floats(min_value=0, max_value=500, allow_nan=False),
)


@given(st.lists(st.tuples(LABELS, AMOUNTS), max_size=40))
def test_histogram_matches_prometheus_client(observations):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopHistogram("t_seconds", "doc", ("route",), LATENCY_BUCKETS, registry=ours)
    ref = Histogram("t_seconds", "doc", ["route"], buckets=LATENCY_BUCKETS, registry=theirs)
    for route, amount in observations:
        mine.labels(route).observe(amount)
        ref.labels(route).observe(amount)
    assert exposition(ours) == exposition(theirs)


@given(st.lists(st.tuples(LABELS, st.sampled_from(["200", "503"])), max_size=40))
def test_counter_matches_prometheus_client(updates):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopCounter("t_requests", "doc", ("route", "status"), registry=ours)
    ref = Counter("t_requests", "doc", ["route", "status"], registry=theirs)
    for route, status in updates:
        mine.labels(route, status).inc()
        ref.labels(route=route, status=status).inc()
    assert exposition(ours) == exposition(theirs)


def test_labels_by_name_and_wrong_labels():
    counter = LoopCounter("t_cache", "doc", ("result",), registry=CollectorRegistry())
    counter.labels(result="hit").inc(2)
    assert counter.labels("hit").value == 2
    with pytest.raises(ValueError, match="t_cache takes labels"):
        counter.labels("hit", "extra")
    with pytest.raises(ValueError, match="t_cache takes labels"):
        counter.labels(outcome="hit")


def test_router_metrics_names_are_registered_once():
    """Same names as before; a second registration of a name fails as with the library."""
    m = RouterMetrics()
    m.requests.labels("onprem", "public", "200").inc()
    m.classify_seconds.observe(0.002)
    assert m.registry.get_sample_value(
        "edgepack_router_requests_total",
        {"route": "onprem", "sensitivity": "public", "status": "200"},
    ) == 1  # fmt: skip
    assert m.registry.get_sample_value("edgepack_router_classify_seconds_count") == 1
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopCounter("edgepack_router_requests", "again", ("route",), registry=m.registry)


MULTIPROCESS = """
import sys
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from router.metrics import LoopCounter, LoopHistogram

ours = sys.argv[1] == "loop"
r = CollectorRegistry()
counter, histogram = (LoopCounter, LoopHistogram) if ours else (Counter, Histogram)
c = counter("t_requests", "doc", ("route",), registry=r)
h = histogram("t_seconds", "doc", ("route",), buckets=(0.1, 1.0), registry=r)
for amount in (0.05, 0.5, 2.0, 0.1):
    c.labels("a").inc()
    h.labels("b").observe(amount)
if ours:
    for _ in range(2):  # absolute values: publishing again counts nothing twice
        c.publish()
        h.publish()
scrape = CollectorRegistry()
multiprocess.MultiProcessCollector(scrape)
sys.stdout.write(generate_latest(scrape).decode())
"""


def test_published_loop_metrics_read_like_prometheus_clients_in_multiprocess_mode(tmp_path):
    """With several workers a scrape sums the workers' files: what LoopCounter and
    LoopHistogram publish there reads exactly as prometheus_client's own metrics."""
    import os
    import subprocess
    import sys

    scrapes = []
    for kind in ("loop", "prometheus_client"):
        folder = tmp_path / kind
        folder.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
        run = subprocess.run([sys.executable, "-c", MULTIPROCESS, kind], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        scrapes.append(sorted(run.stdout.splitlines()))
    assert scrapes[0] == scrapes[1]
    assert 't_requests_total{route="a"} 4.0' in scrapes[0]
    assert 't_seconds_bucket{le="0.1",route="b"} 2.0' in scrapes[0]
    assert 't_seconds_count{route="b"} 4.0' in scrapes[0]


WATCHED = """
from router.metrics import RouterMetrics

m = RouterMetrics()
old = []
m.watch(m.in_flight, lambda: old.append(1) or 1)
m.watch(m.in_flight, lambda: 2)  # a reloaded pool's function replaces the old one's
m.requests.labels("onprem", "public", "200").inc(3)
print(m.exposition().decode())
print("old function read", len(old), "time(s)")
"""


def test_watched_gauges_and_counters_reach_a_multiprocess_scrape(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", WATCHED], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    lines = run.stdout.splitlines()
    assert "edgepack_router_in_flight 2.0" in lines
    assert "old function read 1 time(s)" in lines  # when it was set, never after
    assert (
        'edgepack_router_requests_total{route="onprem",sensitivity="public",status="200"} 3.0'
        in lines
    )
