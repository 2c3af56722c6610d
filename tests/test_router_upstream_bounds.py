"""What the router takes from its upstreams is bounded, and a broken stream looks broken.

A misbehaving on-prem server (raw asyncio on loopback: it stalls, closes mid-stream, sends
bad framing, huge heads or bodies, status 999) sits behind the real router; the official
`openai` SDK is the client: it must raise on every broken stream, the on-prem ones and
SageMaker's ModelStreamError (the real boto3 against tests' SageMaker double)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fixtures.router_env import RouterEnv, chat

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
LIMITS = {"max_head_bytes": 16_384, "max_body_bytes": 100_000, "max_chunk_bytes": 50_000}


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def misbehave(mode: str, writer: asyncio.StreamWriter) -> None:
    """Answer a POST as `mode` says (the prompt's text)."""
    if mode == "stall":
        await asyncio.sleep(30)
    elif mode == "big-head":
        writer.write(
            b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 100_000 + b"\r\ncontent-length: 2\r\n\r\n{}"
        )
    elif mode == "status-999":
        writer.write(
            b"HTTP/1.1 999 Odd\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        )
    elif mode == "big-body":
        body = b'{"x":"' + b"a" * 1_000_000 + b'"}'
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    else:  # streams: one good event, then the failure
        writer.write(SSE_HEAD + chunk(EVENT))
        await writer.drain()
        await asyncio.sleep(0.2)  # the router has passed the head on: the failure is mid-stream
        if mode == "close-mid-stream":
            pass
        elif mode == "bad-chunk":
            writer.write(b"zz\r\nnot a chunk\r\n")
        elif mode == "stall-mid-stream":
            await asyncio.sleep(30)
        elif mode == "big-chunk":
            writer.write(chunk(b"data: " + b"a" * 60_000 + b"\n\n"))
    await writer.drain()


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            if lines[0].startswith("GET"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                continue
            length = next(
                int(v)
                for k, _, v in (h.partition(": ") for h in lines)
                if k.lower() == "content-length"
            )
            body = json.loads(await reader.readexactly(length))
            await misbehave(body["messages"][0]["content"], writer)
            break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class RawUpstream:
    """The misbehaving server, on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(serve_connection, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.started.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> RawUpstream:
        self.thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def cancel_all() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterEnv]:
    """Public requests go to the misbehaving on-prem server (no SageMaker configured)."""
    with RawUpstream() as raw:
        overrides = {
            "onprem": {"upstreams": [{"name": "raw", "url": f"http://127.0.0.1:{raw.port}"}]},
            "timeouts": {"upstream_first_byte_s": 1.0, "upstream_stream_idle_s": 1.0},
            "responses": LIMITS,
            "retry": {"max_attempts": 1},
            "breaker": {"consecutive_failures": 1000},  # each case fails: keep the one upstream
        }
        tmp = tmp_path_factory.mktemp("upstream-bounds")
        with RouterEnv.start(tmp, n_onprem=1, overrides=overrides, sagemaker=False) as env:
            yield env


def sdk(env: RouterEnv) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.router.url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize(
    ("mode", "status", "kind"),
    [("stall", 504, "upstream_timeout"), ("big-head", 502, "upstream_invalid_response"),
     ("status-999", 502, "upstream_invalid_response"),
     ("big-body", 502, "upstream_invalid_response")],
)  # fmt: skip
def test_a_stalled_or_oversized_answer_is_refused(
    env: RouterEnv, mode: str, status: int, kind: str
):
    answer = env.client.post("/v1/chat/completions", json=chat(mode))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["type"] == kind


def broken_streams_seen(env: RouterEnv, pool: str) -> float:
    text = env.client.get("/metrics").text
    line = f'edgepack_router_streams_broken_total{{pool="{pool}"}} '
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)


@pytest.mark.parametrize("mode", ["close-mid-stream", "bad-chunk", "stall-mid-stream", "big-chunk"])
def test_the_openai_sdk_raises_on_a_broken_onprem_stream(env: RouterEnv, mode: str) -> None:
    before = broken_streams_seen(env, "onprem")
    got: list[str] = []
    stream = sdk(env).chat.completions.create(
        model="m", messages=[{"role": "user", "content": mode}], stream=True
    )
    with pytest.raises(openai.APIError):
        for event in stream:
            got.append(event.choices[0].delta.content)
    assert got == ["hi"]  # what came before the failure was passed on
    assert broken_streams_seen(env, "onprem") == before + 1


def test_a_whole_stream_still_ends_cleanly(tmp_path) -> None:
    with RouterEnv.start(tmp_path, n_onprem=1, sagemaker=False) as env:
        stream = sdk(env).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}], stream=True
        )
        assert len(list(stream)) >= 1


def test_the_openai_sdk_raises_on_a_sagemaker_model_stream_error(tmp_path) -> None:
    with RouterEnv.start(tmp_path, n_onprem=1) as env:
        env.sagemaker.stream_error_after = 1
        stream = sdk(env).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "what is a tree"}], stream=True
        )
        with pytest.raises(openai.APIError, match="ModelStreamError"):
            list(stream)
        assert broken_streams_seen(env, "sagemaker") == 1


def test_a_broken_stream_ends_without_its_last_chunk(env: RouterEnv) -> None:
    """Beyond the error event: the chunked answer is cut, so any HTTP client sees it."""
    received = b""
    request = chat("close-mid-stream", stream=True)
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        env.client.stream("POST", "/v1/chat/completions", json=request) as answer,
    ):
        for data in answer.iter_raw():
            received += data
    assert received.startswith(EVENT) and b'"error"' in received
