"""Structured JSON logs, one object per line on stderr; never prompt or completion text.

Request records carry only: request id, api, route, upstream, sensitivity, reasons (labels),
status, latency, attempts. Uvicorn's own loggers go through the same JSON formatter and its
access log is off (the router writes its own request record).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import select
import sys
import time
from collections.abc import Iterator

LOGGER = logging.getLogger("edgepack.router")
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        data.update(getattr(record, FIELDS, None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__  # type only: messages may quote input
        return json.dumps(data, separators=(",", ":"), default=str)


def setup(level: str = "info") -> None:
    """Send the router's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("edgepack.router", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def set_level(level: str) -> None:
    """A reloaded `logging.level`."""
    for name in ("edgepack.router", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(level.upper())


def uvicorn_log_config(level: str = "info") -> dict:
    """A dictConfig for uvicorn.run(log_config=...) that emits JSON and no access log."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "edgepack.router": {"handlers": ["json"], "level": level.upper(), "propagate": False},
        },
    }


RequestLabels = tuple[str, str | None, str | None, str | None, tuple[str, ...], int, int, bool]
"""api, route, upstream, sensitivity, reasons, status, attempts, stream: a closed set of
values (labels, configured names, small numbers), so their JSON is made once per set."""
RequestRecord = tuple[float, str, float, RequestLabels]
"""ts, request id, latency ms, labels: the request line's fields, taken when it ends."""


class RequestLog:
    """Request lines, written in batches: the logging module's record + handler per request
    cost more than the rest of a rules-only request. Lines have the JsonFormatter's shape;
    a batch goes out at 64 lines or 100 ms after its first line, whichever comes first.

    A request leaves only its fields (`RequestRecord`); the batch formats its lines when it
    is written, in one loop. Formatting each line as its request ended cost ~10 µs of CPU
    per request in benchmarks/router/inproc.py (cold code between two requests), about
    three times what the same formatting costs inside the batch's loop."""

    def __init__(self, max_lines: int = 64, max_delay_s: float = 0.1) -> None:
        self.records: list[RequestRecord] = []
        self.max_lines = max_lines
        self.max_delay_s = max_delay_s
        self._timer: asyncio.TimerHandle | None = None

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        if len(self.records) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.max_delay_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.records:
            records, self.records = self.records, []
            stream = SINK or sys.stderr
            head = _head(os.getpid())
            for chunk in _chunks([_line(head, record) for record in records]):
                stream.write(chunk)
                stream.flush()


SINK = None  # a text stream that replaces stderr for request lines (tests)
REQUESTS = RequestLog()
atexit.register(REQUESTS.flush)


def request_record(ctx, status: int) -> None:  # ctx: router.context.RequestContext
    """One line per request; only labels and numbers, never the body."""
    if LOGGER.disabled or not LOGGER.isEnabledFor(logging.INFO):
        return
    decision = ctx.decision
    sensitivity, reasons = (decision.sensitivity, decision.reasons) if decision else (None, ())
    latency_ms = (time.monotonic() - ctx.started) * 1000
    labels = (ctx.api.value, ctx.route or None, ctx.upstream or None, sensitivity, reasons,
              int(status), int(ctx.attempts), ctx.stream)  # fmt: skip
    REQUESTS.add((time.time(), ctx.request_id, latency_ms, labels))


def _head(pid: int) -> str:
    return f'"level":"info","logger":"{LOGGER.name}","pid":{pid},"msg":"request","request_id":"'


def _line(head: str, record: RequestRecord) -> str:
    """One request's JSON line, formatted by hand: json.dumps of the record cost ~10 µs, half
    the line's cost. Only the time, the request id (ingress accepts it only from a safe
    alphabet) and the latency differ from line to line; the rest is JSON made once per
    label set (`_segments`) or per batch (`head`)."""
    ts, request_id, latency_ms, labels = record
    middle, tail = _SEGMENTS.get(labels) or _segments(labels)
    return f'{{"ts":{ts:.3f},{head}{request_id}",{middle}"latency_ms":{latency_ms:.3f},{tail}'


def _chunks(lines: list[str]) -> Iterator[str]:
    """Whole lines, at most PIPE_BUF bytes per write (the lines are ASCII): the kernel
    writes that much to a pipe at once, so several workers on one stderr never cut
    into each other's lines."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > select.PIPE_BUF:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield "".join(chunk)


_SEGMENTS: dict[RequestLabels, tuple[str, str]] = {}


def _segments(labels: RequestLabels) -> tuple[str, str]:
    """The JSON around the latency for one label set, remembered (bounded)."""
    api, route, upstream, sensitivity, reasons, status, attempts, stream = labels
    middle = (
        f'"api":"{api}","route":{_quoted(route)},"upstream":{_quoted(upstream)},'
        f'"sensitivity":{_quoted(sensitivity)},"reasons":{_quoted(reasons)},'
        f'"status":{status},'
    )
    tail = f'"attempts":{attempts},"stream":{"true" if stream else "false"}}}\n'
    if len(_SEGMENTS) < 4096:  # a closed set in practice; never grow without bound
        _SEGMENTS[labels] = (middle, tail)
    return middle, tail


_QUOTED: dict[object, str] = {}


def _quoted(value: str | tuple[str, ...] | None) -> str:
    """JSON for a label (or a tuple of labels), computed once per distinct value."""
    text = _QUOTED.get(value)
    if text is None:
        plain = list(value) if isinstance(value, tuple) else value
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
        if len(_QUOTED) < 4096:  # labels are a closed set; never grow without bound
            _QUOTED[value] = text
    return text


def event(message: str, **fields) -> None:
    """A non-request event (health changes, startup); fields must not carry request text."""
    LOGGER.info(message, extra={FIELDS: fields})
