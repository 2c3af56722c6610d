"""Ingress: read and check the request body, and hand the classifier all of its text.

Limits come first (body ≤ 6 MB → else 413) so a huge body is never parsed. The body goes
upstream byte for byte, so the classifier gets every string in it (jsonbody.py says why
that is the choice, and how a body with two readings is refused): `texts`, what the model
reads as the conversation (messages' content and tool calls, or the prompt), and `fields`,
every other key and value. OpenAI bodies must be JSON objects with `messages` (chat) or
`prompt` (completions). `/invocations` passes any content type through: JSON (and JSON
lines) is read like the OpenAI bodies; text is decoded with its declared charset (UTF-8 by
default; 400 if it does not decode); any other type is read as text when it is UTF-8
without control characters, and is otherwise opaque, so handled as confidential: what the
router cannot read never goes to the cloud.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

from router import jsonbody
from router.asgi import Receive, Scope, header_dict, read_body
from router.context import Api, RequestContext
from router.errors import RouterError, bad_request
from router.offload import in_thread

REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
JSON_LINES = ("application/x-ndjson", "application/jsonlines", "application/jsonl")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # in text: all but \t \n \r
CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)
loads = jsonbody.loads  # re-exported: callers and tests read JSON through ingress


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
    read = _read_invocation if api is Api.invocations else _read_openai
    if len(body) < jsonbody.BIG_BODY:
        read(ctx)
    else:  # megabytes of parsing and walking: the event loop gets the GIL between steps
        await in_thread(read, ctx)
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
    ctx.fields = _rest(jsonbody.strings(payload), ctx.texts)


def _rest(strings: list[str], taken: list[str]) -> list[str]:
    """`strings` less one occurrence of each of `taken` (the texts already handed over)."""
    left = Counter(taken)
    rest = []
    for s in strings:
        if left[s] > 0:
            left[s] -= 1
        else:
            rest.append(s)
    return rest


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with one reading (jsonbody.py), else a one-line 400."""
    return jsonbody.read_object(body)


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
            texts.extend(jsonbody.strings(content))
        elif content is not None:
            raise bad_request(f"messages.{i}.content: must be a string or a list of parts")
        tool_calls = message.get("tool_calls")
        if tool_calls:  # most messages have none: no walk of an empty value
            texts.extend(jsonbody.strings(tool_calls))
    return texts


def prompt_texts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        return [" ".join(map(str, prompt))]  # token ids: digits still reach the detectors
    raise bad_request("prompt: must be a string or a list of strings")


def _read_invocation(ctx: RequestContext) -> None:
    ctype = ctx.content_type.lower()
    if not ctype:
        raise RouterError(415, "unsupported_media_type", "Content-Type is required")
    if ctype.startswith("application/json"):
        ctx.texts = jsonbody.strings(jsonbody.read(ctx.body))
    elif ctype.startswith(JSON_LINES):
        ctx.texts = [s for line in ctx.body.splitlines() if line.strip()
                     for s in jsonbody.strings(jsonbody.read(line))]  # fmt: skip
    elif ctype.startswith("text/"):
        ctx.texts = [_declared_text(ctx.body, ctx.content_type)]
    else:
        text = _utf8_text(ctx.body)
        if text is None:
            ctx.opaque = True
        else:
            ctx.texts = [text]


def _declared_text(body: bytes, content_type: str) -> str:
    """A text/* body decoded with its charset (default UTF-8); 400 when it does not decode."""
    match = CHARSET.search(content_type)
    charset = match.group(1) if match else "UTF-8"
    try:
        return body.decode(charset)  # text encodings only: "base64" is a LookupError
    except LookupError:
        raise bad_request(f"unknown charset: {charset}") from None
    except UnicodeDecodeError:
        raise bad_request(f"request body is not valid {charset}") from None


def _utf8_text(body: bytes) -> str | None:
    """A body of another type as text, when it is UTF-8 without control characters (a
    UTF-16 text is full of NULs: read as UTF-8 its digits would sit apart); else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if CONTROL.search(text) else text
