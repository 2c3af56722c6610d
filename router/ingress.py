"""Ingress: read and check the request body, and pull out the text the classifier reads.

Limits come first (body ≤ 6 MB → else 413) so a huge body is never parsed. OpenAI bodies
must be UTF-8 JSON objects with `messages` (chat) or `prompt` (completions); `/invocations`
passes any content type through, and the classifier reads it as text when it is text (JSON
string values, text/*). A body that cannot be read (binary) is marked opaque and so handled
as confidential: what the router cannot inspect never goes to the cloud.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import orjson

from router.asgi import Receive, Scope, header_dict, read_body
from router.context import Api, RequestContext
from router.errors import RouterError, bad_request

REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))  # "0" or "."
LONG_NUMBER = b"0" * 19  # a run of 19 digits, after DIGITS_AS_ZERO
TEXT_TYPES = ("application/json", "text/", "application/x-ndjson", "application/jsonlines")
MAX_JSON_DEPTH = 64
"""Deeper JSON is refused (400): no chat body nests this far, and every step that walks the
payload (the cache key's json.dumps, the upstream's parser) stays far from its recursion
limit."""


async def parse(
    scope: Scope, receive: Receive, api: Api, limit: int, deadline_s: float
) -> RequestContext:
    headers = header_dict(scope)
    body = await read_body(receive, headers.get("content-length"), limit)
    ctx = RequestContext(
        request_id=_request_id(headers.get("x-request-id")),
        api=api,
        body=body,
        content_type=headers.get("content-type", ""),
        accept=headers.get("accept", "*/*"),
        headers=headers,
    )
    ctx.deadline = ctx.started + deadline_s
    if api is Api.invocations:
        _read_invocation(ctx)
    else:
        _read_openai(ctx)
    return ctx


def _request_id(value: str | None) -> str:
    """The caller's id when it looks like one (it is logged), else a new one: 128 random
    bits as 32 hex digits, like uuid4().hex. A correlation id, not a secret, so Python's
    generator (seeded from the OS, re-seeded in a forked child) instead of a getrandom()
    system call per request (half the cost)."""
    if value and REQUEST_ID.fullmatch(value):
        return value
    return f"{random.getrandbits(128):032x}"


def _read_openai(ctx: RequestContext) -> None:
    if not ctx.content_type.lower().startswith("application/json"):
        raise RouterError(415, "unsupported_media_type", "Content-Type must be application/json")
    payload = json_object(ctx.body)
    field = "messages" if ctx.api is Api.chat else "prompt"
    if field not in payload:
        raise bad_request(f"missing field: {field}")
    ctx.payload = payload
    ctx.stream = payload.get("stream") is True
    if ctx.api is Api.chat:
        ctx.texts = chat_texts(payload["messages"])
    else:
        ctx.texts = prompt_texts(payload["prompt"])


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = loads(None, body)
    except UnicodeDecodeError:
        raise bad_request("request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    return payload


def loads(text: str | None, utf8: bytes) -> Any:
    """`json.loads(text)`, the same value, 3-4x faster where orjson can give it (`utf8`:
    the body `text` was decoded from; `text` None: decoded here only if the standard
    library must parse, raising UnicodeDecodeError; orjson checks UTF-8 as strictly).
    orjson refuses NaN/Infinity, lone surrogates and out-of-range floats (the standard
    library then parses, or raises its own error), and reads integers of 19 digits or more
    as floats, whose lost digits could hide an identifier from the detectors: a body with
    such a digit run goes to the standard library at once (found with two C passes: a
    regex took 3 µs per request)."""
    if utf8.translate(DIGITS_AS_ZERO).find(LONG_NUMBER) < 0:
        try:
            return _shallow(orjson.loads(utf8), utf8)
        except orjson.JSONDecodeError:
            pass
    try:
        return _shallow(json.loads(utf8.decode("utf-8") if text is None else text), utf8)
    except RecursionError:
        raise _too_deep() from None


def _shallow(value: Any, utf8: bytes) -> Any:
    """`value` if it nests at most MAX_JSON_DEPTH deep. Walked only when the body has more
    brackets than that (two C scans): few bodies do."""
    if utf8.count(b"[") + utf8.count(b"{") <= MAX_JSON_DEPTH:
        return value
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return value
    if any(isinstance(item, dict | list) for item in level):
        raise _too_deep()
    return value


def _too_deep() -> RouterError:
    return bad_request(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")


def chat_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: must be a non-empty list")
    texts: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise bad_request(f"messages.{i}: must be an object with a role")
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(_strings(content))
        elif content is not None:
            raise bad_request(f"messages.{i}.content: must be a string or a list of parts")
        tool_calls = message.get("tool_calls")
        if tool_calls:  # most messages have none: no walk of an empty value
            texts.extend(_strings(tool_calls))
    return texts


def prompt_texts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        return [" ".join(map(str, prompt))]  # token ids: digits still reach the detectors
    raise bad_request("prompt: must be a string or a list of strings")


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value (keys included: they can carry data too)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
    return out


def _read_invocation(ctx: RequestContext) -> None:
    ctype = ctx.content_type.lower()
    if not ctype:
        raise RouterError(415, "unsupported_media_type", "Content-Type is required")
    if not ctype.startswith(TEXT_TYPES):
        ctx.opaque = True
        return
    try:
        text = ctx.body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("request body is not valid UTF-8") from None
    if ctype.startswith("application/json"):
        try:
            ctx.texts = _strings(loads(text, ctx.body))
        except json.JSONDecodeError as exc:
            raise bad_request(f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    else:
        ctx.texts = [text]
