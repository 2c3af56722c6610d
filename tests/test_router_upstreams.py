"""The two pools on their own: the on-prem pick rule and its HTTP exchange against the
OpenAI-protocol test server (answers, streams, error statuses, unreachable/slow/broken
upstreams, health checks), and the SageMaker pool with the real boto3 client against the
SageMaker test server (variant/component headers, pool sizing, error mapping, mid-stream
model errors, the deadline)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time

import pytest

from router.config import OnPremConfig, SageMakerConfig
from router.context import Api, RequestContext
from router.metrics import RouterMetrics
from router.steps import NoOutlier
from router.testing.openai_server import FakeOpenAI
from router.testing.sagemaker_server import ERRORS, FakeSageMaker
from router.testing.serve import ServerThread
from router.upstreams.base import StreamBroken, UpstreamFailure
from router.upstreams.onprem import OnPremPool
from router.upstreams.sagemaker import SageMakerPool, map_client_error


def _ctx(stream: bool = False, deadline_s: float = 10.0) -> RequestContext:
    ctx = RequestContext("rid", Api.chat, b'{"messages": []}', "application/json", "*/*", {})
    ctx.stream, ctx.deadline = stream, time.monotonic() + deadline_s
    return ctx


def _onprem(weights: list[float]) -> OnPremPool:
    ups = [{"name": f"u{i}", "url": f"http://127.0.0.1:{9000 + i}", "weight": w}
           for i, w in enumerate(weights)]  # fmt: skip
    return OnPremPool(OnPremConfig(upstreams=ups), RouterMetrics(), NoOutlier())


def test_pick_is_weighted_least_outstanding():
    pool = _onprem([3.0, 1.0])
    heavy, light = pool.members
    picks = collections.Counter()
    for _ in range(400):  # simulate requests that stay outstanding
        m = pool.pick()
        m.outstanding += 1
        picks[m.name] += 1
    assert picks["u0"] == 300 and picks["u1"] == 100  # in-flight ratio follows the weights
    heavy.healthy = False
    assert pool.pick() is light
    light.healthy = False
    assert pool.pick() is None and not pool.usable()


def test_pick_prefers_the_idle_upstream():
    pool = _onprem([1.0, 1.0, 1.0])
    pool.members[0].outstanding, pool.members[1].outstanding = 5, 0
    pool.members[2].outstanding = 2
    assert pool.pick() is pool.members[1]


def test_a_retry_avoids_the_upstream_that_failed_while_another_is_available():
    pool = _onprem([1.0, 1.0])
    dead, alive = pool.members
    alive.outstanding = 5  # the dead one fails fast: it looks idle
    assert pool.pick() is dead
    assert pool.pick(avoid=("u0",)) is alive
    alive.healthy = False  # nothing else left: the avoided one rather than no answer
    assert pool.pick(avoid=("u0",)) is dead


@pytest.fixture(scope="module")
def gpu():
    fake = FakeOpenAI(name="gpu")
    with ServerThread(fake) as server:
        yield fake, server.url


async def _onprem_send(url: str, ctx: RequestContext, read_stream: bool = False, **cfg):
    """One request through a started pool: (failure or reply, body, member state).

    The state is (outstanding, healthy, busy connections, idle connections); the pool's
    first health check runs beside the request on a connection of its own.
    """
    cfg.setdefault("health", {"eject_on_failure": True})  # what these tests watch
    config = OnPremConfig(upstreams=[{"name": "g", "url": url}], **cfg)
    pool = OnPremPool(config, RouterMetrics(), NoOutlier())
    await pool.start()
    try:
        reply = await pool.send(ctx)
        body = b"".join([c async for c in reply.stream]) if read_stream else reply.body
        result = reply
    except UpstreamFailure as exc:
        result, body = exc, None
    finally:
        await asyncio.sleep(0.05)  # the health check and closed connections settle
        member, http = pool.members[0], pool.members[0].http
        state = (member.outstanding, member.healthy, http.connections - http.idle, http.idle)
        await pool.close()
    return result, body, state


def test_onprem_answers_whole_and_streamed(gpu):
    fake, url = gpu
    reply, body, state = asyncio.run(_onprem_send(url, _ctx()))
    assert (reply.status, reply.content_type, reply.upstream) == (200, "application/json", "g")
    assert b"answer from gpu" in body and state[:3] == (0, True, 0) and state[3] >= 1
    assert fake.bodies[-1] == b'{"messages": []}'
    ctx = _ctx(stream=True)
    ctx.body = b'{"messages": [], "stream": true}'
    reply, body, state = asyncio.run(_onprem_send(url, ctx, read_stream=True))
    assert reply.content_type == "text/event-stream" and reply.body is None
    assert body.count(b"data: ") == 4 and body.endswith(b"data: [DONE]\n\n")
    assert state[:3] == (0, True, 0)  # the slot is released when the stream ends


def test_onprem_stream_left_early_drops_the_connection_not_the_upstream(gpu):
    fake, url = gpu
    fake.chunk_delay_s = 0.5

    async def main():
        config = OnPremConfig(upstreams=[{"name": "g", "url": url}])
        pool = OnPremPool(config, RouterMetrics(), NoOutlier())
        await pool.start()
        ctx = _ctx(stream=True)
        ctx.body = b'{"stream": true}'
        try:
            reply = await pool.send(ctx)
            first = await reply.stream.__anext__()
            member = pool.members[0]
            during = member.outstanding
            await reply.stream.aclose()  # the caller left
            await asyncio.sleep(0.05)
            conns = (member.http.connections, member.http.idle)
            return first, during, member.outstanding, member.healthy, conns
        finally:
            await pool.close()

    try:
        first, during, after, healthy, conns = asyncio.run(main())
    finally:
        fake.chunk_delay_s = 0.0
    assert first.startswith(b"data: ") and (during, after, healthy) == (1, 0, True)
    assert conns == (1, 1)  # only the health check's connection is left


@pytest.mark.parametrize(
    ("status", "answer", "retryable", "retry_after"),
    [(503, 503, True, 1.0), (429, 429, True, 1.0), (500, 502, False, None),
     (504, 504, True, None)],
)  # fmt: skip
def test_onprem_error_statuses(gpu, status, answer, retryable, retry_after):
    fake, url = gpu
    fake.fail_next[:] = [status]
    failure, _, state = asyncio.run(_onprem_send(url, _ctx()))
    assert (failure.status, failure.kind, failure.retryable) == (
        answer,
        "upstream_error",
        retryable,
    )
    assert failure.retry_after == retry_after and fake.fail_next == []
    assert state == (0, False, 0, 2)  # ejected at once; its connection stays usable


def test_by_default_one_busy_answer_does_not_eject(gpu):
    """The breaker (issue 7) ejects after several failures; the pool's instant ejection is
    opt-in, or one 503 from a busy GPU would empty a small pool."""
    fake, url = gpu
    fake.fail_next[:] = [503]
    failure, _, state = asyncio.run(_onprem_send(url, _ctx(), health={}))
    assert failure.status == 503 and state[:2] == (0, True)


def test_onprem_unreachable_and_timeout(gpu):
    fake, url = gpu
    failure, _, state = asyncio.run(_onprem_send("http://127.0.0.1:9", _ctx()))
    assert (failure.status, failure.kind, failure.retryable) == (502, "upstream_unreachable", True)
    assert state == (0, False, 0, 0)
    fake.latency_s = 1.0
    try:
        start = time.monotonic()
        failure, _, state = asyncio.run(_onprem_send(url, _ctx(deadline_s=0.2)))
        elapsed = time.monotonic() - start
    finally:
        fake.latency_s = 0.0
    # sent and maybe running: not repeated elsewhere (nginx passes a POST on only if asked)
    assert (failure.status, failure.kind, failure.retryable) == (504, "upstream_timeout", False)
    assert elapsed < 0.9 and state == (0, False, 0, 1)  # only the health check's is kept


def test_onprem_connection_lost_mid_body():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"partial')
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await _onprem_send(f"http://127.0.0.1:{port}", _ctx())
        finally:
            server.close()

    failure, _, state = asyncio.run(main())
    assert (failure.status, failure.kind, failure.retryable) == (502, "upstream_error", True)
    assert state == (0, False, 0, 0)  # the checks' connections were closed by the server too


def test_onprem_health_checks_flip_a_member(gpu):
    fake, url = gpu

    async def main() -> list[tuple[bool, bool]]:
        health = {"unhealthy_after": 2, "healthy_after": 1, "timeout_s": 0.5}
        config = OnPremConfig(upstreams=[{"name": "g", "url": url}], health=health)
        pool = OnPremPool(config, RouterMetrics(), NoOutlier())
        await pool.start()
        member, seen = pool.members[0], []
        try:
            fake.healthy = False
            for _ in range(2):
                seen.append((await pool.check(member), member.healthy))
            fake.healthy = True
            seen.append((await pool.check(member), member.healthy))
        finally:
            fake.healthy = True
            await pool.close()
        return seen

    assert asyncio.run(main()) == [(False, True), (False, False), (True, True)]


@pytest.fixture(scope="module")
def sagemaker():
    fake = FakeSageMaker(endpoints=("ep",))
    with pytest.MonkeyPatch.context() as mp, ServerThread(fake) as server:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if key not in os.environ:
                mp.setenv(key, "test")  # boto3 signs; the test server ignores signatures
        yield fake, server.url


async def _send(config: SageMakerConfig, ctx: RequestContext, read_stream: bool = False):
    pool = SageMakerPool(config, RouterMetrics())
    await pool.start()
    try:
        reply = await pool.send(ctx)
        body = b"".join([c async for c in reply.stream]) if read_stream else reply.body
        return pool, reply, body
    finally:
        await pool.close()


def _config(url: str, **extra) -> SageMakerConfig:
    return SageMakerConfig(endpoint_name="ep", endpoint_url=url, max_concurrency=7, **extra)


def test_variant_component_and_pool_size(sagemaker):
    fake, url = sagemaker
    cfg = _config(url, target_variant="blue", inference_component="llm-ic")
    pool, reply, body = asyncio.run(_send(cfg, _ctx()))
    assert reply.status == 200 and b"answer from sagemaker" in body
    sent = fake.headers[-1]
    assert sent["x-amzn-sagemaker-target-variant"] == "blue"
    assert sent["x-amzn-sagemaker-inference-component"] == "llm-ic"
    assert sent["authorization"].startswith("AWS4-HMAC-SHA256")  # real boto3 signed it
    assert pool.client.meta.config.max_pool_connections == 7 == pool.executor._max_workers


def test_stream_reads_payload_parts_and_stops_at_a_model_stream_error(sagemaker):
    fake, url = sagemaker
    _, reply, body = asyncio.run(_send(_config(url), _ctx(stream=True), read_stream=True))
    assert reply.content_type == "text/event-stream"
    assert body.count(b"data: ") == 4 and body.endswith(b"data: [DONE]\n\n")
    fake.stream_error_after = 1
    chunks: list[bytes] = []

    async def read_until_broken() -> None:
        pool = SageMakerPool(_config(url), RouterMetrics())
        await pool.start()
        try:
            reply = await pool.send(_ctx(stream=True))
            async for chunk in reply.stream:
                chunks.append(chunk)
        finally:
            await pool.close()

    try:
        with pytest.raises(StreamBroken, match="ModelStreamError"):
            asyncio.run(read_until_broken())
    finally:
        fake.stream_error_after = None
    body = b"".join(chunks)  # one part, then an error event in OpenAI's shape; no [DONE]
    assert body.count(b"data: ") == 2 and b"[DONE]" not in body
    assert json.loads(chunks[-1].removeprefix(b"data: "))["error"]["type"] == "upstream_error"


@pytest.mark.parametrize(
    ("outcome", "status", "retryable"),
    [("throttle", 429, True), ("not_ready", 503, True), ("unavailable", 503, True),
     ("internal", 502, True), ("dependency", 502, True), ("validation", 400, False),
     ("model_error_503", 503, True), ("model_error_400", 400, False),
     ("model_error_500", 502, False)],
)  # fmt: skip
def test_errors_from_the_wire(sagemaker, outcome, status, retryable):
    fake, url = sagemaker
    fake.fail_next[:] = [outcome]
    with pytest.raises(UpstreamFailure) as info:
        asyncio.run(_send(_config(url), _ctx()))
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert info.value.upstream == "ep" and fake.fail_next == []
    assert ERRORS[outcome][1] in info.value.message


def test_unknown_codes_and_unreachable_endpoint():
    failure = map_client_error({"Error": {"Code": "AccessDeniedException"}})
    assert (failure.status, failure.retryable) == (502, False)
    cfg = SageMakerConfig(
        endpoint_name="ep", endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.5
    )
    with pytest.raises(UpstreamFailure) as info:
        asyncio.run(_send(cfg, _ctx()))
    assert info.value.status == 502 and info.value.retryable


def test_deadline_bounds_a_slow_endpoint(sagemaker):
    fake, url = sagemaker
    fake.latency_s = 1.0

    async def run() -> tuple[UpstreamFailure, float]:
        pool = SageMakerPool(_config(url), RouterMetrics())
        await pool.start()
        start = time.monotonic()
        try:
            await pool.send(_ctx(deadline_s=0.2))
        except UpstreamFailure as exc:
            return exc, time.monotonic() - start
        finally:
            await pool.close()
        raise AssertionError("no failure")

    try:
        failure, elapsed = asyncio.run(run())
    finally:
        fake.latency_s = 0.0
    assert failure.status == 504 and elapsed < 0.9
