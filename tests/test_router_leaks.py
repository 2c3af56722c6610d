"""Property: whatever its shape or length, a confidential request never reaches the cloud.

Hypothesis takes a confidential snippet (identifiers the detectors know, and sentences
only a model can judge), writes it in any of the encodings an app or a careless user
produces (full-width, invisible characters inside words, Cyrillic/Greek look-alikes,
dotted digit groups, base64, percent-encoding, a base64 JSON log record), and places it
anywhere in a valid body: any field of a chat or completions request (a message's name,
a tool's description, a JSON-schema response format, user, metadata keys and values, stop,
suffix, a legacy function_call, unknown fields at any depth), an /invocations body (JSON,
JSON lines, text), after thousands of words of filler, or in message k of n. The real
router app serves it with the real tokenizer, windows and micro-batcher; the SageMaker
test double counts every request it receives, and none may arrive.

The model is fixtures/keyword_model.py (a real ONNX graph that flags windows holding a
keyword): model-only sentences carry one, so the test checks that every part of every
text reaches the model, not the trained model's judgement.
The default run takes 150 examples; the `slow` one 2,000 more.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from tests.fixtures.keyword_model import make_keyword_model
from tests.fixtures.router_env import RouterEnv

KEYWORDS = ["merger", "unreleased", "takeover", "lawsuit"]
MODEL_ONLY = [
    "The merger with Northwind is signed and will be announced next month.",
    "Our unreleased phone ships in October at a price we have not shared.",
    "The board approved a hostile takeover of a listed competitor.",
    "Legal expects the lawsuit against our finance chief to be filed quietly.",
]
FILLER = ["please", "summarise", "the", "weather", "report", "for", "the", "northern", "region",
          "and", "explain", "the", "project", "timeline", "to", "the", "new", "team", "members",
          "in", "plain", "words"]  # fmt: skip
CONFUSABLE = dict(zip("aceopxyABCEHIKMOPTXijs", "асеорхуАВСЕНІКМОРТХіјѕ", strict=True))
CONFUSABLE |= dict(zip("NZ", "ΝΖ", strict=True))  # Greek
FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


@st.composite
def cards(draw) -> str:
    body = draw(st.sampled_from("3456")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=14, max_size=14))
    )
    number = body + luhn.calc_check_digit(body)
    return f"card {' '.join(number[i:i + 4] for i in range(0, 16, 4))}"  # fmt: skip


snippets = st.one_of(
    cards(),
    st.sampled_from([
        "IBAN DE89 3704 0044 0532 0130 00", "SSN 219-09-9998", "身份证 11010519491231002X",
        "CONFIDENTIAL", "internal use only", "内部机密", "attorney-client privileged",
        "AKIAQYLPMN5HHHFPZAM2", "my email is jane.doe@example.org",
    ]),
    st.sampled_from(MODEL_ONLY),
)  # fmt: skip


def _spread_digits(text: str, sep: str) -> str:
    """Digit groups' spaces and dashes → `sep` (4539.1488.0343.6467, 219.09.9998)."""
    out = list(text)
    for i in range(1, len(text) - 1):
        if text[i] in " -" and text[i - 1].isalnum() and text[i + 1].isdigit():
            out[i] = sep
    return "".join(out)


def _zero_width(text: str, every: int) -> str:
    return "\u200b".join(text[i : i + every] for i in range(0, len(text), every))


def _log_record(text: str) -> str:
    record = json.dumps({"level": "info", "msg": text})
    return "event " + base64.b64encode(record.encode()).decode()


ENCODINGS = {
    "plain": lambda t, n: t,
    "full_width": lambda t, n: "".join(FULL_WIDTH.get(c, c) for c in t),
    "zero_width": lambda t, n: _zero_width(t, 1 + n % 4),
    "confusable": lambda t, n: "".join(CONFUSABLE.get(c, c) for c in t),
    "dotted": lambda t, n: _spread_digits(t, "._/"[n % 3]),
    "base64": lambda t, n: base64.b64encode(t.encode()).decode(),
    "base64_url": lambda t, n: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="),
    "percent": lambda t, n: urllib.parse.quote(t, safe=""),
    "log_record": lambda t, n: _log_record(t),
}


def filler(words: int, seed: int) -> str:
    return " ".join(FILLER[(seed + i * 7) % len(FILLER)] for i in range(words))


# Where a string can sit in a chat request; each takes the body and the string.
def _chat_places(body: dict, s: str, depth: int) -> dict:
    return {
        "content": lambda: body["messages"].append({"role": "user", "content": s}),
        "content_part": lambda: body["messages"].append(
            {"role": "user", "content": [{"type": "text", "text": s}]}),
        "name": lambda: body["messages"][0].update(name=s),
        "tool_description": lambda: body.update(tools=[{"type": "function", "function": {
            "name": "file_expense", "description": s, "parameters": {"type": "object"}}}]),
        "schema": lambda: body.update(response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object", "properties": {
                "x": {"type": "string", "description": s}}}}}),
        "user": lambda: body.update(user=s),
        "metadata_value": lambda: body.update(metadata={"ticket": s}),
        "metadata_key": lambda: body.update(metadata={s: "1"}),
        "stop": lambda: body.update(stop=["\n\n", s]),
        "function_call": lambda: body.update(function_call={"name": s}),
        "tool_call": lambda: body["messages"].append({"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "f", "arguments": json.dumps({"q": s})}}]}),
        "unknown": lambda: body.update(x_extra=_nest(s, depth)),
        "unknown_key": lambda: body.update(x_extra=_nest({s: True}, depth)),
    }  # fmt: skip


def _nest(value, depth: int):
    for i in range(depth):
        value = {"level": value} if i % 2 else [value]
    return value


@st.composite
def requests(draw) -> tuple[str, bytes, str]:
    """(path, body, content type) with the snippet somewhere in it."""
    snippet = draw(snippets)
    n = draw(st.integers(0, 1000))
    encoded = ENCODINGS[draw(st.sampled_from(sorted(ENCODINGS)))](snippet, n)
    api = draw(st.sampled_from(["chat", "chat", "chat", "completions", "invocations"]))
    depth = draw(st.integers(0, 12))
    bury = draw(st.sampled_from(["none", "after_filler", "message_k_of_n"]))
    words = draw(st.integers(0, 3000))
    if bury == "after_filler":
        encoded = f"{filler(words, n)} {encoded} {filler(n % 50, n)}"
    if api == "invocations":
        kind = draw(st.sampled_from(["json", "jsonl", "text"]))
        if kind == "text":
            return "/invocations", encoded.encode(), "text/plain"
        record = {"inputs": filler(n % 20, n), "parameters": {"max_new_tokens": 16}}
        record[draw(st.sampled_from(["inputs", "parameters", "extra"]))] = _nest(encoded, depth)
        if kind == "jsonl":
            lines = [json.dumps({"inputs": filler(5, i)}) for i in range(n % 3)]
            return (
                "/invocations",
                "\n".join([*lines, json.dumps(record)]).encode(),
                "application/x-ndjson",
            )
        return "/invocations", json.dumps(record).encode(), "application/json"
    if api == "completions":
        body = {"model": "m", "prompt": filler(n % 30, n), "max_tokens": 16}
        place = draw(
            st.sampled_from(["prompt", "prompt_list", "suffix", "stop", "user", "unknown"])
        )
        value = {"prompt_list": [filler(3, n), encoded]}.get(place, encoded)
        body["prompt" if place == "prompt_list" else place] = (
            _nest(value, depth) if place == "unknown" else value
        )
        return "/v1/completions", json.dumps(body).encode(), "application/json"
    body = {"model": "m", "messages": [{"role": "system", "content": filler(n % 40, n)}]}
    if bury == "message_k_of_n":
        total = draw(st.integers(2, 12))
        k = draw(st.integers(0, total - 1))
        for i in range(total):
            role = "user" if i % 2 == 0 else "assistant"
            text = encoded if i == k else filler(draw(st.integers(0, 400)), n + i)
            body["messages"].append({"role": role, "content": text})
    else:
        place = draw(st.sampled_from(sorted(_chat_places(body, encoded, depth))))
        _chat_places(body, encoded, depth)[place]()
        if body["messages"][-1]["role"] != "user":
            body["messages"].append({"role": "user", "content": filler(n % 10, n)})
    body["stream"] = draw(st.booleans())
    return (
        "/v1/chat/completions",
        json.dumps(body, ensure_ascii=draw(st.booleans())).encode(),
        "application/json",
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leaks")
    model = make_keyword_model(folder / "onnx", KEYWORDS)
    overrides = {  # health checks lenient: a loaded test machine must not empty the pool
        "limits": {"deadline_s": 30},
        "classifier": {"model": {"path": str(model), "timeout_ms": 5000}},
        "onprem": {"health": {"interval_s": 1.0, "timeout_s": 5.0, "unhealthy_after": 3}},
    }
    with RouterEnv.start(folder, overrides=overrides, record=False) as env:
        yield env


def _check(env, request: tuple[str, bytes, str]) -> None:
    path, body, ctype = request
    before = env.sagemaker.requests
    r = env.client.post(path, content=body, headers={"content-type": ctype})
    r.read()
    assert r.headers["x-sensitivity"] == "confidential", r.text
    assert env.sagemaker.requests == before, "a confidential request reached SageMaker"
    if r.status_code != 503:  # 503: no on-prem server free (a loaded machine); closed
        assert (r.status_code, r.headers["x-route"]) == (200, "onprem"), r.text


SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow,
                                                        HealthCheck.data_too_large]}  # fmt: skip


@settings(max_examples=150, **SETTINGS)
@given(request=requests())
def test_no_confidential_request_reaches_the_cloud(env, request):
    _check(env, request)


@pytest.mark.slow
@settings(max_examples=2000, **SETTINGS)
@given(request=requests())
def test_no_confidential_request_reaches_the_cloud_many(env, request):
    _check(env, request)


def test_public_requests_of_the_same_shapes_still_go_to_the_cloud(env):
    """The property is not met by sending everything on-prem: the same bodies with the
    snippet left out (filler instead), and filler in each encoding, go to SageMaker."""
    before = env.sagemaker.requests
    text = filler(300, 1)
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": enc(text, 3)}],
         "user": "u-17", "metadata": {"ticket": "T-1"}, "stop": ["\n\n"]}
        for name, enc in ENCODINGS.items() if name != "dotted"
    ]  # fmt: skip
    for body in bodies:
        r = env.client.post("/v1/chat/completions", json=body)
        assert (r.status_code, r.headers["x-route"]) == (200, "sagemaker"), body
    assert env.sagemaker.requests == before + len(bodies)


@pytest.mark.parametrize("place", ["content", "tool_description"])
@pytest.mark.parametrize(
    "snippet",
    ["card 4539 1488 0343 6467", MODEL_ONLY[0], _log_record("内部机密"),
     "".join(f"\\u{ord(c):04x}" for c in MODEL_ONLY[1])],
)  # fmt: skip
def test_a_long_body_is_read_to_its_end(env, snippet, place):
    """Past 100 KB (parsed in a worker thread, read a piece at a time): a snippet at the very
    end is still found, and the same body without it still goes to the cloud."""
    long = filler(16_000, 5)
    for text, route in ((f"{long} {snippet}", "onprem"), (long, "sagemaker")):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        _chat_places(body, text, 0)[place]()
        before = env.sagemaker.requests
        r = env.client.post("/v1/chat/completions", json=body)
        assert (r.status_code, r.headers["x-route"]) == (200, route), r.text
        assert env.sagemaker.requests == before + (route == "sagemaker")
