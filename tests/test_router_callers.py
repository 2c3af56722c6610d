"""A trusted caller skips classification only with its secret (router/callers.py): a name
alone, a wrong or partial token, or another caller's token never does. Checked as a
property over arbitrary header values, and end to end through the router."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.callers import CallerTrust
from router.config import ClassifierConfig, config_from_dict
from router.errors import UserError
from tests.fixtures.router_env import RouterEnv, chat

SECRETS = {"batch-job": "tok-batch-0123456789", "indexer": "tok-idx-abcdef"}
ENV = {"BATCH_TOKEN": SECRETS["batch-job"], "INDEXER_TOKEN": SECRETS["indexer"]}
CONFIG = ClassifierConfig(
    trusted_callers=["batch-job", "indexer"],
    caller_tokens={"batch-job": {"env": "BATCH_TOKEN"}, "indexer": {"env": "INDEXER_TOKEN"}},
)
TRUST = CallerTrust(CONFIG, ENV)
names = st.sampled_from([*SECRETS, "", "Batch-Job", "someone"]) | st.text(max_size=12)


@given(name=names, token=st.text(max_size=40), bearer=st.booleans())
def test_no_token_but_the_callers_own_is_trusted(name: str, token: str, bearer: bool) -> None:
    headers = {"x-caller": name, "x-caller-token": ("Bearer " if bearer else "") + token}
    assert TRUST.proven(headers) == (token.strip() == SECRETS.get(name))


@given(name=names, extra=st.dictionaries(st.text(max_size=10), st.text(max_size=20)))
def test_a_name_alone_is_never_trusted(name: str, extra: dict[str, str]) -> None:
    headers = {k.lower(): v for k, v in extra.items() if k.lower() != "x-caller-token"}
    assert not TRUST.proven(headers | {"x-caller": name})


def test_the_exact_secret_is_trusted_with_or_without_bearer() -> None:
    for value in (
        SECRETS["indexer"],
        f"Bearer {SECRETS['indexer']}",
        f"bearer  {SECRETS['indexer']} ",
    ):
        assert TRUST.proven({"x-caller": "indexer", "x-caller-token": value})


def test_trusted_callers_need_a_token_and_an_unreadable_one_stops_the_router(
    tmp_path: Path,
) -> None:
    base = {"onprem": {"upstreams": [{"name": "a", "url": "http://127.0.0.1:9"}]}}
    with pytest.raises(
        UserError, match="trusted_callers without a token in caller_tokens: batch-job"
    ):
        config_from_dict(base | {"classifier": {"trusted_callers": ["batch-job"]}})
    missing = {
        "trusted_callers": ["batch-job"],
        "caller_tokens": {"batch-job": {"file": str(tmp_path / "none")}},
    }
    with pytest.raises(UserError, match=r"caller_tokens\.batch-job\.file: cannot read"):
        CallerTrust(ClassifierConfig(**missing))
    with pytest.raises(UserError, match="empty or unset"):
        CallerTrust(CONFIG, {})


def test_through_the_router_only_the_token_skips_classification(tmp_path: Path) -> None:
    token = tmp_path / "batch-job.token"
    token.write_text(SECRETS["batch-job"] + "\n")
    classifier = {
        "trusted_callers": ["batch-job"],
        "caller_tokens": {"batch-job": {"file": str(token)}},
    }
    with RouterEnv.start(tmp_path, n_onprem=1, overrides={"classifier": classifier}) as env:
        card = chat("card 4111 1111 1111 1111")
        claimed = {"x-data-classification": "public", "x-caller": "batch-job"}
        spoofed = env.client.post("/v1/chat/completions", json=card, headers=claimed)
        proven = env.client.post(
            "/v1/chat/completions", json=card,
            headers=claimed | {"x-caller-token": f"Bearer {SECRETS['batch-job']}"},
        )  # fmt: skip
    assert spoofed.headers["x-route"] == "onprem"
    assert spoofed.headers["x-sensitivity"] == "confidential"
    assert proven.headers["x-route"] == "sagemaker"
    assert env.sagemaker.requests == 1
    assert all(b"tok-batch" not in body for body in env.sagemaker.bodies)
