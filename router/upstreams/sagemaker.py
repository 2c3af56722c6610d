"""The cloud pool: a SageMaker real-time endpoint through boto3's `sagemaker-runtime`.

boto3 is synchronous, so every call runs in a thread pool sized to `max_concurrency`, and
botocore's connection pool (`max_pool_connections`) has the same size: no thread ever
waits for a connection, no connection sits idle. Streams (InvokeEndpointWithResponseStream)
are read in a pool thread and handed to the event loop chunk by chunk. botocore's own
retries are off (one attempt): retrying is the router's retry step, inside its budget.

SageMaker's errors become HTTP answers (`map_client_error`); throttling and "not ready"
are retryable, so a public request may overflow to on-prem when the policy allows.
An answer over a cap (config `responses`) is refused with 502 and one log line; a stream
that fails after it started (ModelStreamError, a broken connection, a PayloadPart or total
over its cap) ends broken (`StreamBroken`), never cleanly. botocore's `read_timeout_s`
bounds each read: the first byte and the silence between stream events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from router import logs
from router.asgi import error_event
from router.config import ResponsesConfig, SageMakerConfig
from router.context import RequestContext
from router.metrics import RouterMetrics
from router.upstreams.base import (
    RETRYABLE_STATUS,
    StreamBroken,
    UpstreamFailure,
    UpstreamReply,
)

# SageMaker error code → (HTTP status for the caller, retryable elsewhere)
ERROR_MAP: dict[str, tuple[int, bool]] = {
    "ThrottlingException": (429, True),
    "ModelNotReadyException": (503, True),
    "ServiceUnavailable": (503, True),
    "InternalFailure": (502, True),
    "InternalDependencyException": (502, True),
    "InternalStreamFailure": (502, True),
    "ModelStreamError": (502, False),
    "ValidationError": (400, False),
}
_DONE = object()


def map_client_error(response: dict[str, Any]) -> UpstreamFailure:
    """botocore ClientError.response → the failure the router answers with."""
    error = response.get("Error", {})
    code = error.get("Code", "Unknown")
    message = f"sagemaker: {code}"
    if code == "ModelError":
        original = _int(response.get("OriginalStatusCode") or error.get("OriginalStatusCode"))
        if original is not None and 400 <= original < 500 and original != 429:
            return UpstreamFailure(
                original, "model_error", f"{message} ({original})", retryable=False
            )
        retryable = original in RETRYABLE_STATUS
        status = 503 if original in (429, 503) else 502
        return UpstreamFailure(
            status, "model_error", f"{message} ({original})", retryable=retryable
        )
    status, retryable = ERROR_MAP.get(code, (502, False))
    retry_after = 1.0 if status in (429, 503) else None
    return UpstreamFailure(
        status, _kind(code), message, retryable=retryable, retry_after=retry_after
    )


def _kind(code: str) -> str:
    return {
        "ThrottlingException": "upstream_throttled",
        "ValidationError": "invalid_request_error",
    }.get(code, "upstream_error")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SageMakerPool:
    def __init__(
        self,
        config: SageMakerConfig,
        metrics: RouterMetrics,
        name: str = "sagemaker",
        responses: ResponsesConfig = ResponsesConfig(),
    ):
        self.name = name
        self.config = config
        self.responses = responses
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="sagemaker")
        self.client = None
        self.in_flight = 0  # read when Prometheus scrapes, like the on-prem pool's
        gauge = metrics.upstream_in_flight.labels(name, config.endpoint_name)
        metrics.watch(gauge, lambda: self.in_flight)

    async def start(self) -> None:
        self.client = await asyncio.get_running_loop().run_in_executor(self.executor, self._client)
        self.metrics.upstream_healthy.labels(self.name, self.config.endpoint_name).set(1)

    def _client(self):
        import boto3
        from botocore.config import Config

        cfg = self.config
        session = boto3.session.Session()
        return session.client(
            "sagemaker-runtime",
            region_name=cfg.region,
            endpoint_url=str(cfg.endpoint_url).rstrip("/") if cfg.endpoint_url else None,
            config=Config(
                max_pool_connections=cfg.max_concurrency,
                connect_timeout=cfg.connect_timeout_s,
                read_timeout=cfg.read_timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
            ),
        )

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def usable(self) -> bool:
        return self.client is not None

    def _params(self, ctx: RequestContext) -> dict[str, Any]:
        params: dict[str, Any] = {
            "EndpointName": self.config.endpoint_name,
            "Body": ctx.body,
            "ContentType": ctx.content_type or "application/json",
            "Accept": ctx.accept if ctx.accept and ctx.accept != "*/*" else "application/json",
        }
        if self.config.target_variant:
            params["TargetVariant"] = self.config.target_variant
        if self.config.inference_component:
            params["InferenceComponentName"] = self.config.inference_component
        return params

    async def send(self, ctx: RequestContext) -> UpstreamReply:
        if self.client is None:
            raise UpstreamFailure(
                503, "no_upstream_available", "sagemaker client not started", retryable=True
            )
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            call = self._invoke_stream if ctx.stream else self._invoke
            future = loop.run_in_executor(self.executor, call, self._params(ctx))
            result = await asyncio.wait_for(future, max(ctx.remaining(), 0.001))
        except TimeoutError:
            raise UpstreamFailure(
                504,
                "upstream_timeout",
                "sagemaker timed out",
                retryable=True,
                upstream=self.config.endpoint_name,
            ) from None
        finally:
            self.in_flight -= 1
        if isinstance(result, UpstreamFailure):
            result.upstream = self.config.endpoint_name
            raise result
        content_type, payload = result
        if ctx.stream:
            stream = self._pump(payload, loop)
            ctype = content_type if content_type.startswith("text/") else "text/event-stream"
            return UpstreamReply(200, ctype, stream=stream, upstream=self.config.endpoint_name)
        return UpstreamReply(200, content_type, body=payload, upstream=self.config.endpoint_name)

    def _invoke(self, params: dict[str, Any]) -> tuple[str, bytes] | UpstreamFailure:
        """In a pool thread: the whole call, body read included (never on the event loop)."""
        return self._guard(lambda: self._read(self.client.invoke_endpoint(**params)))

    def _read(self, response: dict[str, Any]) -> tuple[str, bytes] | UpstreamFailure:
        """The answer's body, read up to its cap (one byte more tells it is over)."""
        limit = self.responses.max_body_bytes
        body = response["Body"].read(limit + 1)
        if len(body) > limit:
            response["Body"].close()
            why = f"response body over {limit} bytes"
            logs.event(
                "upstream answer refused",
                pool=self.name,
                upstream=self.config.endpoint_name,
                why=why,
            )
            return UpstreamFailure(
                502, "upstream_invalid_response", f"sagemaker: {why}", retryable=False
            )
        return response.get("ContentType", "application/json"), body

    def _invoke_stream(self, params: dict[str, Any]) -> tuple[str, Any] | UpstreamFailure:
        def call() -> tuple[str, Any]:
            response = self.client.invoke_endpoint_with_response_stream(**params)
            return response.get("ContentType", "application/json"), response["Body"]

        return self._guard(call)

    async def _pump(self, events: Any, loop) -> AsyncIterator[bytes]:
        """Read an EventStream in a pool thread; yield PayloadPart bytes on the event loop.
        A failure after the first byte (botocore raises ModelStreamError and
        InternalStreamFailure while iterating) or a part over its cap ends it broken."""
        queue: asyncio.Queue = asyncio.Queue()
        stop = False

        def read() -> None:
            try:
                for event in events:
                    if stop:
                        break
                    part = event.get("PayloadPart")
                    if part and part.get("Bytes"):
                        loop.call_soon_threadsafe(queue.put_nowait, part["Bytes"])
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            except Exception as exc:
                code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
                loop.call_soon_threadsafe(queue.put_nowait, _Broken(code or type(exc).__name__))

        loop.run_in_executor(self.executor, read)
        limits, total = self.responses, 0
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, _Broken):
                    raise self._broken(item.why)
                total += len(item)
                if len(item) > limits.max_chunk_bytes:
                    raise self._broken(f"PayloadPart over {limits.max_chunk_bytes} bytes")
                if total > limits.max_stream_bytes:
                    raise self._broken(f"stream over {limits.max_stream_bytes} bytes")
                yield item
        except StreamBroken as broken:
            yield error_event(str(broken))
            raise
        finally:
            stop = True
            with contextlib.suppress(Exception):
                events.close()

    def _broken(self, why: str) -> StreamBroken:
        """Counted and logged; the caller raises it."""
        self.metrics.child(self.metrics.streams_broken, self.name).inc()
        logs.event("stream broken", pool=self.name, upstream=self.config.endpoint_name, why=why)
        return StreamBroken(f"sagemaker: {why}")

    @staticmethod
    def _guard(call) -> Any:
        """Run a botocore call, turning its errors into UpstreamFailure values."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            return call()
        except ClientError as exc:
            return map_client_error(exc.response)
        except (ReadTimeoutError, ConnectTimeoutError):
            return UpstreamFailure(504, "upstream_timeout", "sagemaker timed out", retryable=True)
        except EndpointConnectionError:
            return UpstreamFailure(
                502, "upstream_unreachable", "sagemaker unreachable", retryable=True
            )
        except BotoCoreError as exc:
            return UpstreamFailure(
                502, "upstream_error", f"sagemaker: {type(exc).__name__}", retryable=True
            )


class _Broken:
    """What the reading thread hands over when the stream failed."""

    def __init__(self, why: str) -> None:
        self.why = why
