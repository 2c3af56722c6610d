"""An OpenAI-compatible test upstream (stands in for vLLM / TensorRT-LLM / Triton's frontend).

Speaks POST /v1/chat/completions and /v1/completions (JSON, or SSE when `stream: true`),
POST /invocations, GET /health. `FakeOpenAI` controls it from the test: latency, a list of
statuses to answer next, a failure rate, health, stream length; it counts what it served.
A raw ASGI app (no framework) so it costs little CPU in benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from router.testing.asgi import Outcomes, answered_lifespan, read_body


@dataclass
class FakeOpenAI:
    name: str = "onprem"
    latency_s: float = 0.0
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, in order
    fail_rate: float = 0.0  # chance of a 503
    healthy: bool = True
    stream_chunks: int = 3
    chunk_delay_s: float = 0.0
    record: bool = True  # keep bodies (tests); off in benchmarks
    seed: int = 0
    requests: int = 0
    bodies: list[bytes] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._outcomes = Outcomes(self.seed)

    async def __call__(self, scope, receive, send) -> None:
        if await answered_lifespan(scope, receive, send):
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/health":
            await _reply(send, 200 if self.healthy else 503, b'{"ok":true}')
            return
        body = await read_body(receive)
        if method != "POST" or path not in (
            "/v1/chat/completions",
            "/v1/completions",
            "/invocations",
        ):
            await _reply(send, 404, b'{"error":{"message":"not found"}}')
            return
        await self._serve(path, body, send)

    async def _serve(self, path: str, body: bytes, send) -> None:
        self.requests += 1
        if self.record:
            self.bodies.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            status = self._outcomes.next(self.fail_next, self.fail_rate, 503, 200)
            if status != 200:
                await _reply(
                    send,
                    status,
                    json.dumps({"error": {"message": f"{self.name} failed"}}).encode(),
                    [(b"retry-after", b"1")] if status in (429, 503) else [],
                )
                return
            stream = _wants_stream(body)
            if stream:
                await self._stream(send)
            else:
                await _reply(send, 200, self._completion(path))
        finally:
            self.in_flight -= 1

    def _completion(self, path: str) -> bytes:
        kind = "chat.completion" if "chat" in path else "text_completion"
        choice = {"index": 0, "finish_reason": "stop"}
        if kind == "chat.completion":
            choice["message"] = {"role": "assistant", "content": f"answer from {self.name}"}
        else:
            choice["text"] = f"answer from {self.name}"
        return json.dumps(
            {
                "id": f"cmpl-{self.requests}",
                "object": kind,
                "created": int(time.time()),
                "model": self.name,
                "choices": [choice],
            }
        ).encode()

    async def _stream(self, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        for i in range(self.stream_chunks):
            delta = {"choices": [{"index": 0, "delta": {"content": f"{self.name}-{i} "}}]}
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {json.dumps(delta)}\n\n".encode(),
                    "more_body": True,
                }
            )
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def _wants_stream(body: bytes) -> bool:
    try:
        return json.loads(body).get("stream") is True
    except (ValueError, AttributeError):
        return False


async def _reply(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})
