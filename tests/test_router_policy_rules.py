"""The organisation's rules (`classifier.sensitivity`) in the classifier: terms, patterns
with validators, hosts and allowed values, each catching what it should and nothing
around it; reasons name the entry, never the text. The safety properties are hypothesis
properties over generated terms, hosts, addresses and texts."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier

POLICY = {
    "terms": [
        {"name": "codenames", "words": ["Falcon", "Blue Heron", "猎鹰"]},
        {"name": "products", "words": ["Nightjar 2"]},
    ],
    "patterns": [
        {"name": "employee_id", "regex": r"\bEMP-(?P<v>\d{6})\b", "validator": "luhn"},
        {"name": "ticket", "regex": r"\bOPS-\d{4,}\b", "lengths": [7], "prefixes": ["OPS9"]},
        {"name": "badge", "regex": r"\bBDG\d{5}\b"},
    ],
    "hosts": [
        {"name": "corp", "domains": ["corp.example.com", "*.lab.example.net", "bücher.example"],
         "cidrs": ["10.20.0.0/16", "fd00:1::/32"]},
    ],
    "allow": ["Falcon Heavy", "+1 800 555 0100", "4111 1111 1111 1111"],
}  # fmt: skip


def classifier(policy: dict | None = None, **config) -> Classifier:
    cfg = ClassifierConfig.model_validate({"sensitivity": POLICY if policy is None else policy,
                                           **config})  # fmt: skip
    return Classifier(cfg, RouterMetrics(), None)


CLF = classifier()


def reasons(text: str, clf: Classifier = CLF) -> tuple[str, ...]:
    return asyncio.run(clf.classify([text])).reasons


FIRES = [
    ("The falcon team ships Friday", "term:codenames"),
    ("FALCON status?", "term:codenames"),
    ("Ｆａｌｃｏｎ launch", "term:codenames"),  # full-width: NFKC
    ("Fal\u200bcon launch", "term:codenames"),  # a zero-width space inside
    ("Fаlcon launch", "term:codenames"),  # a Cyrillic а: confusables folded
    ("项目Falcon的进度", "term:codenames"),  # Latin word inside CJK text
    ("猎鹰计划的预算", "term:codenames"),  # CJK has no word edges
    ("the blue\n  heron review", "term:codenames"),  # any white space between words
    ("nightjar 2 pricing", "term:products"),
    ("RmFsY29uIGxhdW5jaCBkYXRl", "term:codenames"),  # base64 of "Falcon launch date"
    ("my id EMP-123455", "pattern:employee_id"),
    ("ticket OPS-9123 is open", "pattern:ticket"),
    ("badge BDG12345", "pattern:badge"),
    ("see https://wiki.corp.example.com/page", "host:corp"),
    ("write to ana@corp.example.com.", "host:corp"),
    ("ssh build-01.lab.example.net", "host:corp"),
    ("corp.example.com:8443 is down", "host:corp"),
    ("http://xn--bcher-kva.example/ and more", "host:corp"),
    ("the shop bücher.example sells", "host:corp"),
    ("ping 10.20.3.4 now", "host:corp"),
    ("ping 010.020.003.004 now", "host:corp"),
    ("http://[fd00:1::5]:80/", "host:corp"),
    ("Falcon Heavy and Falcon", "term:codenames"),  # the code name beside the allowed value
    ("card 4111 1111 1111 1111 and 5555 5555 5555 4444", "card"),
]
QUIET = [
    "falconry is an old craft",
    "superfalcon",
    "the heron is blue",
    "Nightjar 20 pricing",
    "my id EMP-123456",  # Luhn fails
    "ticket OPS-1234 is open",  # wrong prefix
    "ticket OPS-91234 is open",  # wrong length
    "notcorp.example.com",
    "corp.example.com.evil.io",
    "lab.example.net",  # subdomains only
    "ping 10.21.3.4",
    "ping 10.20.3.4.5",
    "Falcon Heavy launched today",  # allowed
    "call +1 (800) 555-0100 or 1.800.555.0100",  # allowed, any separators
    "test card 4111-1111-1111-1111",  # allowed
]


@pytest.mark.parametrize(("text", "reason"), FIRES)
def test_each_kind_of_entry_fires_and_names_the_entry(text, reason):
    assert reason in reasons(text)


@pytest.mark.parametrize("text", QUIET)
def test_nothing_fires_around_the_entries(text):
    assert reasons(text) == ()


def test_reasons_come_in_config_order_after_the_detectors():
    text = "Falcon EMP-123455 at 10.20.0.1 with card 5555 5555 5555 4444, Nightjar 2"
    assert reasons(text) == (
        "card", "term:codenames", "term:products", "pattern:employee_id", "host:corp"
    )  # fmt: skip


def test_allowed_values_never_lower_the_header_rule():
    decision = asyncio.run(
        CLF.classify(["Falcon Heavy, +1 800 555 0100"], {"x-data-classification": "secret"})
    )
    assert decision.sensitivity == "confidential" and decision.reasons == ("header",)


def test_a_long_text_is_scanned_in_slices_with_the_same_reasons():
    filler = "Portland is known for its museums and river walks. " * 2000
    text = filler + "ssh build-01.lab.example.net and Falcon. " + filler
    assert CLF.read_long([text])[0] == CLF.read([text])[0] == ("term:codenames", "host:corp")


# --- properties ------------------------------------------------------------------------

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
words = st.text(LATIN, min_size=3, max_size=12)
cjk = st.text("猎鹰计划项目蓝鹭夜鹰产品", min_size=2, max_size=6)
filler = st.lists(st.sampled_from(["please", "summarise", "the", "weather", "report", "和",
                                   "天气", "报告", "总结"]), max_size=6).map(" ".join)  # fmt: skip
edges = st.sampled_from([" ", "\n", ", ", "(", "'", '"', ": ", " — ", "。"])


def _mixed_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.swapcase() if f else c for c, f in zip(word, flips, strict=True))


@settings(max_examples=150, deadline=None)
@given(st.data(), st.lists(st.one_of(words, cjk), min_size=1, max_size=5), filler, filler)
def test_a_term_fires_in_any_case_and_place_and_its_text_never_leaves(data, terms, before, after):
    clf = classifier({"terms": [{"name": "secret-words", "words": terms}]})
    term = data.draw(st.sampled_from(terms))
    shown = _mixed_case(data.draw, term)
    if data.draw(st.booleans()):  # full-width, as some keyboards type it
        shown = "".join(chr(ord(c) + 0xFEE0) if c.isascii() else c for c in shown)
    text = f"{before}{data.draw(edges)}{shown}{data.draw(edges)}{after}"
    found = reasons(text, clf)
    assert found == ("term:secret-words",)
    assert all(term.casefold() not in reason.casefold() for reason in found for term in terms)


@settings(max_examples=100, deadline=None)
@given(words, st.text("abcdefghij", min_size=1, max_size=3), st.booleans())
def test_a_latin_term_inside_a_longer_word_does_not_fire(term, extra, at_end):
    clf = classifier({"terms": [{"name": "secret-words", "words": [term]}]})
    text = f"say {term}{extra} now" if at_end else f"say {extra}{term} now"
    assert reasons(text, clf) == ()


labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?\Z")


@settings(max_examples=100, deadline=None)
@given(st.lists(labels, max_size=3), st.sampled_from(["url", "email", "bare", "port"]), filler)
def test_every_host_under_an_internal_domain_fires_wherever_it_is_written(subs, form, words):
    host = ".".join([*subs, "corp.example.com"])
    shown = {"url": f"https://{host}/a?b=1", "email": f"someone@{host}", "bare": host,
             "port": f"{host}:8443"}[form]  # fmt: skip
    assert "host:corp" in reasons(f"{words} {shown}. {words}")


@settings(max_examples=100, deadline=None)
@given(labels, filler)
def test_a_lookalike_domain_does_not_fire(label, words):
    for text in (
        f"{label}corp.example.com",
        f"corp.example.com.{label}.io",
        f"{label}-corp.example.com",
    ):
        assert "host:corp" not in reasons(f"{words} {text} {words}")


@settings(max_examples=150, deadline=None)
@given(st.ip_addresses(), st.sampled_from(["{}", "http://{}:80/", "host {} is up"]))
def test_an_address_fires_exactly_when_an_internal_network_holds_it(address, form):
    inside = any(address in ipaddress.ip_network(cidr) for cidr in POLICY["hosts"][0]["cidrs"])
    shown = f"[{address}]" if address.version == 6 and form.startswith("http") else str(address)
    assert ("host:corp" in reasons(form.format(shown))) == inside


@settings(max_examples=100, deadline=None)
@given(st.text("0123456789", min_size=6, max_size=6), filler)
def test_a_pattern_fires_exactly_when_its_value_passes_the_validator(number, words):
    expected = ("pattern:employee_id",) if luhn.is_valid(number) else ()
    assert reasons(f"{words} EMP-{number} {words}") == expected


SECRETS = ["Falcon", "EMP-123455", "ana@corp.example.com", "10.20.9.9", "5555 5555 5555 4444",
           "BDG12345"]  # fmt: skip
ALLOWED = POLICY["allow"]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SECRETS), st.lists(st.sampled_from(ALLOWED), max_size=4), filler, st.data())
def test_allowed_values_never_hide_a_secret_beside_them(secret, allowed, words, data):
    parts = [words, *allowed]
    parts.insert(data.draw(st.integers(0, len(parts))), secret)
    sep = data.draw(st.sampled_from([" ", ", ", "\n", " and ", "; "]))
    assert reasons(sep.join(parts)) != ()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ALLOWED), min_size=1, max_size=4), filler)
def test_a_text_of_allowed_values_and_filler_is_not_flagged_by_the_rules(allowed, words):
    assert reasons(f"{words} {', '.join(allowed)} {words}") == ()
