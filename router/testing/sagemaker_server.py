"""A SageMaker runtime test server: the REST-JSON wire protocol of `sagemaker-runtime`.

- POST /endpoints/{name}/invocations → the model's bytes, `Content-Type` and
  `x-Amzn-Invoked-Production-Variant` headers (InvokeEndpoint).
- POST /endpoints/{name}/invocations-response-stream → `application/vnd.amazon.eventstream`
  PayloadPart events carrying SSE lines, ending early with a ModelStreamError if told to
  (InvokeEndpointWithResponseStream).
- Errors as AWS sends them: the status, `x-amzn-ErrorType: <Code>:`, and a JSON body with
  `message`; ModelError carries OriginalStatusCode / OriginalMessage / LogStreamArn.

Point the real boto3 client at it with `endpoint_url`; it ignores SigV4 signatures.
`FakeSageMaker` scripts outcomes (`fail_next`, `throttle_rate`) and records every body it
received, so a test can prove what reached "the cloud".
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

from router.testing import eventstream
from router.testing.asgi import Outcomes, answered_lifespan, read_body

PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<op>invocations|invocations-response-stream)$")

# outcome → (HTTP status, error code, extra JSON members)
ERRORS: dict[str, tuple[int, str, dict]] = {
    "throttle": (400, "ThrottlingException", {}),
    "not_ready": (429, "ModelNotReadyException", {}),
    "unavailable": (503, "ServiceUnavailable", {}),
    "internal": (500, "InternalFailure", {}),
    "dependency": (530, "InternalDependencyException", {}),
    "validation": (400, "ValidationError", {}),
    "model_error_503": (
        424,
        "ModelError",
        {"OriginalStatusCode": 503, "OriginalMessage": "model overloaded"},
    ),
    "model_error_400": (
        424,
        "ModelError",
        {"OriginalStatusCode": 400, "OriginalMessage": "bad input for the model"},
    ),
    "model_error_500": (
        424,
        "ModelError",
        {"OriginalStatusCode": 500, "OriginalMessage": "model crashed"},
    ),
}


@dataclass
class FakeSageMaker:
    endpoints: tuple[str, ...] = ("test-endpoint",)
    variant: str = "AllTraffic"
    latency_s: float = 0.0
    fail_next: list[str] = field(default_factory=list)  # outcomes (keys of ERRORS), in order
    throttle_rate: float = 0.0
    stream_parts: int = 3
    stream_error_after: int | None = None  # send a ModelStreamError after N parts
    seed: int = 0
    record: bool = True
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self._outcomes = Outcomes(self.seed)

    async def __call__(self, scope, receive, send) -> None:
        if await answered_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        match = PATH.match(scope["path"])
        if scope["method"] != "POST" or match is None:
            await _error(send, 404, "UnknownOperationException", "unknown operation")
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests += 1
        if self.record:
            self.bodies.append(body)
            self.headers.append(headers)
        if match["name"] not in self.endpoints:
            await _error(send, 400, "ValidationError", f"Endpoint {match['name']} not found.")
            return
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        outcome = self._outcomes.next(self.fail_next, self.throttle_rate, "throttle", "ok")
        if outcome != "ok":
            status, code, extra = ERRORS[outcome]
            await _error(send, status, code, f"{code} from the test server", extra)
            return
        if match["op"] == "invocations":
            await self._invoke(send, headers)
        else:
            await self._stream(send)

    async def _invoke(self, send, headers: dict[str, str]) -> None:
        answer = {
            "id": f"sm-{self.requests}",
            "object": "chat.completion",
            "model": "sagemaker",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "answer from sagemaker"}}
            ],
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", headers.get("accept", "application/json").encode()),
                    (b"x-amzn-invoked-production-variant", self.variant.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    async def _stream(self, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/vnd.amazon.eventstream"),
                    (b"x-amzn-sagemaker-content-type", b"text/event-stream"),
                    (b"x-amzn-invoked-production-variant", self.variant.encode()),
                ],
            }
        )
        for i in range(self.stream_parts):
            if self.stream_error_after is not None and i >= self.stream_error_after:
                await send(
                    {
                        "type": "http.response.body",
                        "body": eventstream.model_stream_error("model failed mid-stream"),
                        "more_body": True,
                    }
                )
                break
            delta = {"choices": [{"index": 0, "delta": {"content": f"sagemaker-{i} "}}]}
            line = f"data: {json.dumps(delta)}\n\n".encode()
            await send(
                {
                    "type": "http.response.body",
                    "body": eventstream.payload_part(line),
                    "more_body": True,
                }
            )
        else:
            await send(
                {
                    "type": "http.response.body",
                    "body": eventstream.payload_part(b"data: [DONE]\n\n"),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _error(send, status: int, code: str, message: str, extra: dict | None = None) -> None:
    body = {"message": message, **(extra or {})}
    if code == "ModelError":
        body["LogStreamArn"] = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/test"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/x-amz-json-1.1"),
                (
                    b"x-amzn-errortype",
                    f"{code}:http://internal.amazon.com/coral/com.amazon.coral/".encode(),
                ),
                (b"x-amzn-requestid", b"00000000-0000-0000-0000-000000000000"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
