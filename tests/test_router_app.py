"""The router against real servers on 127.0.0.1: OpenAI-protocol test upstreams and the
SageMaker test server driven by the real boto3 client (rules-only classifier here; the
ONNX model has its own tests). The core path runs alone here (`Steps()`: one attempt,
no admission/breakers/cache) so each answer is the core's; issue 7's tests cover those
steps and tests/test_router_property.py runs the full wiring."""

from __future__ import annotations

import io
import json
import logging
import time

import httpx
import pytest

from router import logs
from router.steps import Steps
from tests.fixtures.router_env import RouterEnv, chat

CARD = "Please charge card 4111 1111 1111 1111 for the order."
PUBLIC = "What is the capital of France?"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with RouterEnv.start(tmp_path_factory.mktemp("router"), steps=Steps()) as env:
        yield env


@pytest.fixture(autouse=True)
def _reset(env):
    """Every test starts with healthy, quiet upstreams and the default policy."""
    handler = env.app_state.handler
    config = env.config
    for fake in env.onprem:
        fake.healthy, fake.fail_next, fake.latency_s, fake.chunk_delay_s = True, [], 0.0, 0.0
        fake.bodies.clear()
    env.sagemaker.fail_next.clear()
    env.sagemaker.bodies.clear()
    _wait(
        lambda: (
            env.app_state.handler.pools["onprem"].usable()
            and all(m.healthy for m in env.app_state.handler.pools["onprem"].members)
        )
    )
    yield
    handler.config = config


def _wait(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def _policy(env, **policy) -> None:
    cfg = env.config
    env.app_state.handler.config = cfg.model_copy(
        update={"policy": cfg.policy.model_copy(update=policy)}
    )


def test_confidential_goes_onprem_public_goes_sagemaker(env):
    r = env.client.post("/v1/chat/completions", json=chat(CARD), headers={"x-request-id": "rid-1"})
    assert r.status_code == 200
    assert (r.headers["x-route"], r.headers["x-sensitivity"]) == ("onprem", "confidential")
    assert r.headers["x-request-id"] == "rid-1"
    assert "answer from gpu-" in r.json()["choices"][0]["message"]["content"]
    assert env.sagemaker.bodies == []
    body = json.dumps(chat(PUBLIC)).encode()
    r = env.client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert (r.headers["x-route"], r.headers["x-sensitivity"]) == ("sagemaker", "public")
    assert len(r.headers["x-request-id"]) == 32
    assert env.sagemaker.bodies == [body]  # passed through byte for byte


def test_completions_api_routes_too(env):
    r = env.client.post("/v1/completions", json={"model": "m", "prompt": "SSN 123-45-6789"})
    assert (r.status_code, r.headers["x-route"]) == (200, "onprem")
    assert r.json()["object"] == "text_completion"
    r = env.client.post("/v1/completions", json={"model": "m", "prompt": ["hello", "world"]})
    assert r.headers["x-route"] == "sagemaker"


def test_header_raises_and_untrusted_public_lowers_nothing(env):
    r = env.client.post(
        "/v1/chat/completions", json=chat(PUBLIC), headers={"X-Data-Classification": "confidential"}
    )
    assert (r.headers["x-route"], r.headers["x-sensitivity"]) == ("onprem", "confidential")
    r = env.client.post(
        "/v1/chat/completions",
        json=chat(CARD),
        headers={"X-Data-Classification": "public", "X-Caller": "someone"},
    )
    assert r.headers["x-sensitivity"] == "confidential"
    assert env.sagemaker.bodies == []


def test_onprem_weighted_least_outstanding_spreads_load(env):
    for _ in range(20):
        assert env.client.post("/v1/chat/completions", json=chat(CARD)).status_code == 200
    counts = [len(f.bodies) for f in env.onprem]
    assert sum(counts) == 20 and min(counts) >= 3  # random tie-break between idle equals


def test_streaming_sse_passes_through_from_onprem_as_it_arrives(env):
    for fake in env.onprem:
        fake.chunk_delay_s = 0.3
    with env.client.stream("POST", "/v1/chat/completions", json=chat(CARD, stream=True)) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["x-route"] == "onprem"
        start, stamps, data = time.monotonic(), [], b""
        for chunk in r.iter_raw():
            stamps.append(time.monotonic() - start)
            data += chunk
            if len(stamps) == 1:  # mid-stream: the request is still in flight
                assert "edgepack_router_in_flight 1.0" in env.client.get("/metrics").text
    events = [e for e in data.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and len(events) == 4
    assert stamps[0] < stamps[-1] - 0.5  # the first event came long before the last
    _wait(lambda: "edgepack_router_in_flight 0.0" in env.client.get("/metrics").text)


def test_a_client_leaving_mid_stream_frees_the_upstream_at_once(env):
    """The upstream stream is closed when the caller goes, not read to its end: a long
    generation must not keep a GPU busy for nobody."""
    for fake in env.onprem:
        fake.chunk_delay_s = 1.0  # 3 chunks: about 3 s if read to the end
    members = env.app_state.handler.pools["onprem"].members
    client = httpx.Client(base_url=env.router.url, timeout=10)
    with client, client.stream("POST", "/v1/chat/completions", json=chat(CARD, stream=True)) as r:
        chunks = r.iter_raw()  # kept: a dropped iterator would close the response at once
        next(chunks)  # the first event arrived: the stream is running
        assert sum(m.outstanding for m in members) == 1
    left = time.monotonic()
    _wait(lambda: sum(m.outstanding for m in members) == 0, timeout=2.0)
    assert time.monotonic() - left < 0.9  # before the upstream's next chunk was due
    _wait(lambda: "edgepack_router_in_flight 0.0" in env.client.get("/metrics").text)


def test_streaming_from_sagemaker_event_stream(env):
    with env.client.stream("POST", "/v1/chat/completions", json=chat(PUBLIC, stream=True)) as r:
        body = r.read().decode()
        assert r.headers["x-route"] == "sagemaker"
        assert r.headers["content-type"] == "text/event-stream"
    events = [e for e in body.split("\n\n") if e]
    assert events[0].startswith("data: ") and "sagemaker-0" in events[0]
    assert events[-1] == "data: [DONE]"


def test_invocations_pass_body_and_content_type(env):
    body = b'{"inputs": "summarise the weather report"}'
    r = env.client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert (r.status_code, r.headers["x-route"]) == (200, "sagemaker")
    assert env.sagemaker.bodies[-1] == body
    assert env.sagemaker.headers[-1]["content-type"] == "application/json"
    secret = b'{"inputs": "IBAN DE89 3704 0044 0532 0130 00"}'
    r = env.client.post(
        "/invocations", content=secret, headers={"content-type": "application/json"}
    )
    assert r.headers["x-route"] == "onprem"
    assert secret in [b for f in env.onprem for b in f.bodies]
    r = env.client.post(
        "/invocations", content=b"\x89PNG\x00\x01", headers={"content-type": "image/png"}
    )
    assert (r.headers["x-route"], r.headers["x-sensitivity"]) == ("onprem", "confidential")
    assert len(env.sagemaker.bodies) == 1


def test_classify_endpoint_returns_labels_never_text(env):
    started = time.perf_counter()
    r = env.client.post("/v1/classify", json={"text": "my email is jane.doe@gmail.com"})
    took_ms = (time.perf_counter() - started) * 1000
    decision = r.json()
    assert decision["sensitivity"] == "confidential" and decision["reasons"] == ["email"]
    assert "jane" not in r.text and set(decision) == {"sensitivity", "reasons", "classifier_ms"}
    assert 0 < decision["classifier_ms"] <= took_ms  # its own time, within the request's
    r = env.client.post("/v1/classify", json=chat(PUBLIC))
    assert r.json()["sensitivity"] == "public" and r.json()["reasons"] == []
    assert env.client.post("/v1/classify", json={"foo": 1}).status_code == 400


def test_health_and_metrics(env):
    assert env.client.get("/livez").json() == {"status": "ok"}
    ready = env.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["routes"] == {
        "onprem": True,
        "sagemaker": True,
    }
    env.client.post("/v1/chat/completions", json=chat(CARD))
    text = env.client.get("/metrics").text
    assert (
        'edgepack_router_requests_total{route="onprem",sensitivity="confidential",status="200"}'
        in text
    )
    assert 'edgepack_router_request_seconds_bucket{le="120.0",route="onprem"}' in text
    assert "edgepack_router_classify_seconds_count" in text
    assert 'edgepack_router_upstream_healthy{pool="onprem",upstream="gpu-0"} 1.0' in text
    assert "edgepack_router_confidential_route_usable 1.0" in text
    assert "4111" not in text


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("validation", 400),
        ("model_error_400", 400),
        ("throttle", 429),
        ("not_ready", 503),
        ("unavailable", 503),
        ("model_error_503", 503),
        ("internal", 502),
    ],
)
def test_sagemaker_errors_map_to_http_answers(env, outcome, status):
    _policy(env, public_overflow_to_onprem=False)
    env.sagemaker.fail_next.append(outcome)
    r = env.client.post("/v1/chat/completions", json=chat(PUBLIC))
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json" and "error" in r.json()
    if status in (429, 503):
        assert int(r.headers["retry-after"]) >= 1
    assert env.sagemaker.fail_next == []  # boto3 made exactly one attempt


@pytest.mark.parametrize("outcome", ["throttle", "not_ready", "model_error_503", "unavailable"])
def test_public_overflows_to_onprem_when_sagemaker_cannot(env, outcome):
    env.sagemaker.fail_next.append(outcome)
    r = env.client.post("/v1/chat/completions", json=chat(PUBLIC))
    assert r.status_code == 200
    assert (r.headers["x-route"], r.headers["x-sensitivity"]) == ("onprem", "public")


def test_confidential_without_onprem_is_503_never_sagemaker(env):
    for fake in env.onprem:
        fake.healthy = False
    _wait(lambda: env.client.get("/readyz").json()["routes"]["onprem"] is False)
    r = env.client.post("/v1/chat/completions", json=chat(CARD))
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.headers["x-sensitivity"] == "confidential"
    assert env.sagemaker.bodies == []
    assert "edgepack_router_confidential_route_usable 0.0" in env.client.get("/metrics").text
    assert env.client.get("/readyz").status_code == 200  # sagemaker still takes public ones


def test_failed_upstream_is_ejected_then_probed_back(env, monkeypatch):
    pool = env.app_state.handler.pools["onprem"]
    eject = pool.config.health.model_copy(update={"eject_on_failure": True})  # default: off
    monkeypatch.setattr(pool, "config", pool.config.model_copy(update={"health": eject}))
    env.onprem[0].fail_next = [503] * 50
    env.onprem[1].fail_next = [503] * 50
    r = env.client.post("/v1/chat/completions", json=chat(CARD))
    assert r.status_code == 503  # one attempt in the core router; issue 7 retries
    ejected = [m for m in pool.members if not m.healthy]
    assert len(ejected) == 1
    for fake in env.onprem:
        fake.fail_next = []
    _wait(lambda: all(m.healthy for m in pool.members))  # health checks brought it back


def test_deadline_bounds_a_slow_upstream(env):
    cfg = env.config
    env.app_state.handler.config = cfg.model_copy(
        update={"limits": cfg.limits.model_copy(update={"deadline_s": 0.3})}
    )
    for fake in env.onprem:
        fake.latency_s = 2.0
    start = time.monotonic()
    r = env.client.post("/v1/chat/completions", json=chat(CARD))
    assert r.status_code == 504 and time.monotonic() - start < 1.5


@pytest.mark.parametrize(
    ("path", "content", "ctype", "status", "needle"),
    [
        ("/v1/chat/completions", b"{not json", "application/json", 400, "malformed JSON"),
        ("/v1/chat/completions", b'{"model": "m"}', "application/json", 400, "messages"),
        ("/v1/completions", b'{"model": "m"}', "application/json", 400, "prompt"),
        ("/v1/chat/completions", b'{"messages": "hi"}', "application/json", 400, "messages"),
        ("/v1/chat/completions", b'["a"]', "application/json", 400, "JSON object"),
        ("/v1/chat/completions", b'{"messages": []}', "text/plain", 415, "application/json"),
        ("/v1/chat/completions", b'{"messages": "\xff\xfe"}', "application/json", 400, "UTF-8"),
        ("/invocations", b"\xff\xfe", "text/plain", 400, "UTF-8"),
        ("/invocations", b"abc", "", 415, "Content-Type"),
    ],
)
def test_bad_input_gets_a_json_error(env, path, content, ctype, status, needle):
    r = env.client.post(path, content=content, headers={"content-type": ctype} if ctype else {})
    assert r.status_code == status
    assert needle in r.json()["error"]["message"]
    assert sum(len(f.bodies) for f in env.onprem) == 0 and env.sagemaker.bodies == []


def test_body_over_6mb_is_413_declared_or_streamed(env):
    big = b'{"messages": [{"role": "user", "content": "' + b"a" * (6 * 1024 * 1024) + b'"}]}'
    r = env.client.post(
        "/v1/chat/completions", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"

    def chunks():
        for _ in range(7):
            yield b"a" * (1024 * 1024)

    r = env.client.post("/invocations", content=chunks(), headers={"content-type": "text/plain"})
    assert r.status_code == 413


def test_unknown_path_and_method(env):
    assert env.client.post("/v2/whatever", json={}).status_code == 404
    assert env.client.get("/v1/chat/completions").status_code == 405


def test_logs_are_json_without_text(env, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="edgepack.router")
    sink = io.StringIO()
    monkeypatch.setattr(logs, "SINK", sink)
    env.client.post("/v1/chat/completions", json=chat(CARD), headers={"x-request-id": "log-1"})
    env.client.post(
        "/v1/chat/completions", json=chat(PUBLIC), headers={"x-request-id": "not an id!"}
    )
    _wait(lambda: sink.getvalue().count("\n") >= 2)  # request lines go out in batches
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    record = next(r for r in records if r["request_id"] == "log-1")
    assert record["route"] == "onprem" and record["reasons"] == ["card"]
    assert record["status"] == 200 and record["latency_ms"] > 0 and record["msg"] == "request"
    assert len(records[-1]["request_id"]) == 32  # a request id that is not an id is replaced
    assert "4111" not in sink.getvalue() and "charge" not in sink.getvalue()
