"""Graceful drain: SIGTERM with requests in flight in a subprocess server (all complete,
readiness flips first, new requests get 503 + Retry-After, exit 0); SIGHUP reload keeps
the old config when the new one is bad."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from router.config import DrainConfig
from router.drain import DrainMiddleware, DrainState
from router.server import Reloader
from tests.fixtures.ports import free_port
from tests.fixtures.router_yaml import router_yaml
from tests.fixtures.waiting import eventually

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route
    from router.config import DrainConfig
    from router.drain import DrainState
    from router.server import Reloader, make_server

    state = DrainState(DrainConfig(grace_period_s=10, linger_s=0.3, retry_after_s=3))
    config = {"value": open(sys.argv[2]).read().strip()}

    def load():
        text = open(sys.argv[2]).read().strip()
        if not text.isdigit():
            raise ValueError(f"{sys.argv[2]}: value: not a number")
        return text

    async def slow(request):
        await asyncio.sleep(float(request.query_params.get("s", "1")))
        return PlainTextResponse("done " + config["value"])

    async def readyz(request):
        return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)

    async def value(request):
        return PlainTextResponse(config["value"])

    async def in_flight(request):  # an exempt path, so it is not counted itself
        return PlainTextResponse(str(state.in_flight))

    app = Starlette(routes=[Route("/slow", slow), Route("/readyz", readyz),
                            Route("/value", value), Route("/metrics", in_flight)])
    reloader = Reloader(load, lambda v: config.update(value=v))
    make_server(app, "127.0.0.1", int(sys.argv[1]), state, reloader=reloader).run()
    """
)


def _start(tmp_path: Path, value: str = "1"):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    cfg = tmp_path / "value.txt"
    cfg.write_text(value)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base, cfg
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stdout.read()!r}")


def test_sigterm_finishes_in_flight_refuses_new_and_exits_zero(tmp_path):
    proc, base, _ = _start(tmp_path)
    results: list[tuple[int, str]] = []

    def call(i):
        r = httpx.get(f"{base}/slow?s=1.5", timeout=20)
        results.append((r.status_code, r.text))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    assert eventually(lambda: httpx.get(base + "/metrics").text == "5", timeout=20)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    ready = httpx.get(base + "/readyz", timeout=5)
    assert ready.status_code == 503  # readiness flipped first, while requests still run
    refused = httpx.get(base + "/slow?s=0", timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    for t in threads:
        t.join(30)
    assert results == [(200, "done 1")] * 5
    assert proc.wait(30) == 0


def test_sighup_reloads_and_a_bad_config_keeps_the_old(tmp_path):
    proc, base, cfg = _start(tmp_path, "1")
    try:
        slow = {}
        t = threading.Thread(
            target=lambda: slow.update(r=httpx.get(base + "/slow?s=1", timeout=20))
        )
        t.start()
        time.sleep(0.3)
        cfg.write_text("2")
        proc.send_signal(signal.SIGHUP)
        assert eventually(lambda: httpx.get(base + "/value").text == "2")
        cfg.write_text("not-a-number")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert httpx.get(base + "/value").text == "2"  # rejected; the old one stays
        assert httpx.get(base + "/readyz").status_code == 200
        t.join(20)
        assert slow["r"].status_code == 200  # the reload dropped nothing in flight
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert b"config reload rejected" in proc.stdout.read()


def test_drain_state_waits_for_in_flight_within_grace():
    async def main():
        state = DrainState(DrainConfig(grace_period_s=0.2, linger_s=0))
        state.enter()
        state.begin_drain()
        assert not state.ready
        assert await state.wait_drained() is False  # grace period over, one still running
        state.leave()
        assert await state.wait_drained() is True

    asyncio.run(main())


def test_middleware_refuses_only_new_requests_while_draining():
    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        state = DrainState(DrainConfig(retry_after_s=7))
        app = DrainMiddleware(inner, state)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/v1/chat/completions")).status_code == 200
            state.begin_drain()
            r = await client.get("/v1/chat/completions")
            assert r.status_code == 503 and r.headers["retry-after"] == "7"
            assert (await client.get("/metrics")).status_code == 200

    asyncio.run(main())


def test_reloader_keeps_old_on_error():
    applied = []

    def bad():
        raise ValueError("router.yaml: retry.budget_ratio: must be <= 1\nmore detail")

    assert asyncio.run(Reloader(lambda: 1, applied.append).reload()) and applied == [1]
    r = Reloader(bad, applied.append)
    assert not asyncio.run(r.reload()) and applied == [1]
    assert r.last_error == "router.yaml: retry.budget_ratio: must be <= 1"


def _start_router(cfg: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = "from pipeline.cli import main; main()"
    argv = [sys.executable, "-c", code, "router", "--config", str(cfg), "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    if not eventually(lambda: _ready(base), timeout=60):
        proc.kill()
        raise AssertionError(f"router did not start: {proc.stdout.read()!r}")
    return proc, base


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_router_process_drains_on_sigterm_and_reloads_on_sighup(tmp_path):
    from router.testing.openai_server import FakeOpenAI
    from router.testing.serve import ServerThread

    fake = FakeOpenAI(name="gpu-0", latency_s=1.5)
    with ServerThread(fake) as upstream:
        cfg = tmp_path / "router.yaml"
        router_yaml(cfg, upstream.url)
        proc, base = _start_router(cfg)
        try:
            router_yaml(cfg, upstream.url, limit=10)  # SIGHUP: a valid change applies
            proc.send_signal(signal.SIGHUP)
            limit = lambda: httpx.get(base + "/readyz").json()["admission"]["onprem"]["limit"]  # noqa: E731
            assert eventually(lambda: limit() == 10)
            cfg.write_text(cfg.read_text() + "retry: {budget_ratio: 7}\n")  # invalid
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert limit() == 10 and _ready(base)  # rejected; the old config stays

            body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
            results: list[int] = []

            def call() -> None:
                r = httpx.post(base + "/v1/chat/completions", json=body, timeout=30)
                results.append(r.status_code)

            threads = [threading.Thread(target=call) for _ in range(4)]
            for t in threads:
                t.start()
            assert eventually(lambda: fake.in_flight == 4, timeout=20)
            proc.send_signal(signal.SIGTERM)
            assert eventually(lambda: httpx.get(base + "/readyz").status_code == 503, 2)
            refused = httpx.post(base + "/v1/chat/completions", json=body, timeout=5)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "4"
            for t in threads:
                t.join(30)
            assert results == [200] * 4  # every request in flight completed
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    logs = proc.stdout.read().decode()
    assert "config reload rejected" in logs and "budget_ratio" in logs
