"""Property: no confidential request ever reaches the SageMaker test server.

Hypothesis generates confidential requests (validated card numbers, Chinese IDs, AWS keys,
markers, the caller's header; English and Chinese filler; chat, completions, /invocations;
streamed or not) and public ones, while the upstreams fail at random (SageMaker throttling,
model errors, on-prem 503s, an on-prem server marked unhealthy). The router runs with its
production wiring (issue 7's retries, breakers, admission included). The SageMaker server
counts every request it receives: a confidential request must never add to that count.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from tests.fixtures.router_env import RouterEnv

WORDS = ["please", "summarise", "the", "report", "about", "weather", "和", "天气", "报告",
         "explain", "quickly", "总结", "一下", "project", "timeline"]  # fmt: skip
filler = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)


@st.composite
def card_numbers(draw) -> str:
    body = draw(st.sampled_from("3456")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=14, max_size=14))
    )
    return body + luhn.calc_check_digit(body)


aws_keys = (
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16)
    .filter(lambda s: not s.endswith("EXAMPLE"))  # AWS's documentation key is not a secret
    .map(lambda s: "AKIA" + s)
)
secret_kinds = st.one_of(
    card_numbers().map(lambda n: f"card {n}"),
    st.sampled_from(["11010519491231002X", "身份证 11010519491231002X"]),
    aws_keys,
    st.sampled_from(["CONFIDENTIAL", "internal only", "内部机密", "attorney-client privileged",
                     "IBAN DE89 3704 0044 0532 0130 00", "SSN 219-09-9998"]),
)  # fmt: skip


@st.composite
def requests(draw) -> dict:
    confidential = draw(st.booleans())
    text = draw(filler)
    headers = {"content-type": "application/json"}
    if confidential:
        if draw(st.booleans()):
            text = f"{text} {draw(secret_kinds)} {draw(filler)}"
        else:
            headers["x-data-classification"] = "confidential"
    api = draw(st.sampled_from(["chat", "completions", "invocations"]))
    stream = api != "invocations" and draw(st.booleans())
    if api == "chat":
        path, body = (
            "/v1/chat/completions",
            {"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]},
        )
    elif api == "completions":
        path, body = "/v1/completions", {"model": "m", "prompt": text, "stream": stream}
    else:
        path, body = "/invocations", {"inputs": text}
    return {"confidential": confidential, "path": path, "body": body, "headers": headers}


SAGEMAKER_FAILURES = ["throttle", "not_ready", "model_error_503", "unavailable", "internal",
                      "validation"]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    overrides = {"limits": {"deadline_s": 5}}
    with RouterEnv.start(tmp_path_factory.mktemp("prop"), overrides=overrides, record=False) as env:
        yield env


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    request=requests(),
    sm_fail=st.lists(st.sampled_from(SAGEMAKER_FAILURES), max_size=3),
    onprem_fail=st.lists(st.sampled_from([502, 503, 504, 500]), max_size=3),
    unhealthy=st.booleans(),
)
def test_no_confidential_request_reaches_sagemaker(env, request, sm_fail, onprem_fail, unhealthy):
    env.sagemaker.fail_next[:] = sm_fail
    env.onprem[0].fail_next[:] = onprem_fail
    env.onprem[1].healthy = not unhealthy
    before = env.sagemaker.requests
    r = env.client.post(request["path"], content=json.dumps(request["body"]).encode(),
                        headers=request["headers"])  # fmt: skip
    r.read()
    assert r.status_code in (200, 400, 429, 502, 503, 504), r.text
    if request["confidential"]:
        assert env.sagemaker.requests == before, "a confidential request reached SageMaker"
        assert r.headers["x-sensitivity"] == "confidential"
        assert r.headers.get("x-route") != "sagemaker"
    else:
        assert r.headers["x-sensitivity"] == "public"
    if r.status_code in (429, 503):
        assert int(r.headers["retry-after"]) >= 1
