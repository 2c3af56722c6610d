"""A JSON request body read one way only, and every string in it.

The router forwards a JSON body byte for byte and classifies every string in it: each key
and each value at any depth, numbers as their digits (an identifier sent as a number is
still an identifier). That is the whole body, so there is no list of fields to keep up to
date: a field the router has never heard of is classified like `messages`.

Forwarding what was classified only holds if the upstream reads the bytes as the router
did, so a body with more than one reading is refused (400) before any routing:
- a key twice in one object (parsers disagree on which copy wins: the router would
  classify one and forward both);
- nesting deeper than `MAX_DEPTH` (parsers give up at different depths; Python's raises
  RecursionError);
- not UTF-8, or not JSON (RFC 8259 allows nothing else between systems).
Duplicates are found without a second parse: every key in the text is a string token
followed by a colon, and the tokens are found by one regex pass (in valid JSON a quote
only ever starts or ends a string); fewer keys in the parsed objects than in the text
means a key was repeated. A body from `BIG_BODY` bytes is parsed by the standard library
instead (the reading orjson's refusals fall back to anyway), which hands each object's
pairs to a check: that costs a call per object, where the regex pass over megabytes would
hold the GIL as long as the parse again (ingress reads such a body in a worker thread).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from router.errors import bad_request

MAX_DEPTH = 64  # objects and arrays inside each other; OpenAI bodies nest < 15 deep
BIG_BODY = 64 * 1024  # from here: parsed as below, in a worker thread (ingress.py)
DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))  # "0" or "."
LONG_NUMBER = b"0" * 19  # a run of 19 digits, after DIGITS_AS_ZERO
# group 1: it is a key. Possessive repeats keep no backtracking state per escape (plain ones
# grow the stack with each escape of a string).
STRING_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"(\s*+:)?')


def read_object(body: bytes) -> dict[str, Any]:
    """The body's one reading as a JSON object, or a 400 saying why there is none."""
    value = read(body)
    if not isinstance(value, dict):
        raise bad_request("request body must be a JSON object")
    return value


def read(body: bytes) -> Any:
    big = len(body) >= BIG_BODY
    try:
        value = (
            json.loads(body.decode("utf-8"), object_pairs_hook=_object)
            if big
            else loads(None, body)
        )
    except UnicodeDecodeError:
        raise bad_request("request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _too_deep() from None
    keys = _key_count(value)  # raises for nesting past MAX_DEPTH
    if not big:
        tokens = STRING_TOKEN.findall(body)  # per string token: b":..." for a key, else b""
        if keys != len(tokens) - tokens.count(b""):
            raise _duplicate()
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _duplicate()
    return value


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
            return orjson.loads(utf8)
        except orjson.JSONDecodeError:
            pass
    return json.loads(utf8.decode("utf-8") if text is None else text)


def _key_count(value: Any) -> int:
    """Keys in every object of `value`; raises the 400 for nesting past MAX_DEPTH."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return count


def strings(value: Any) -> list[str]:
    """Every string inside a JSON value in document order: keys, values, and numbers as
    text (booleans and null carry nothing)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
    return out


def _duplicate():
    return bad_request("duplicate key in a JSON object: the body has more than one reading")


def _too_deep():
    return bad_request(f"JSON nested deeper than {MAX_DEPTH} levels")
