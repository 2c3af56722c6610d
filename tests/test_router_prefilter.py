"""The RE2 prefilter may only skip a detector that provably cannot fire.

Three layers of evidence: (1) the engine differences the hints rely on (Python's Unicode
`\\d`, `\\s` and `(?i)` folds vs RE2's) checked over every code point; (2) on every text
of the sensitivity data set and every detector example, the prefiltered `scan` equals the
full per-detector `scan_all`, and the documented behaviour holds through the fast path;
(3) hypothesis mixes detector examples, look-alike digits and folding letters, and checks
per detector part that whenever its full check fires, every hint it requires was present.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import re2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity import registry
from router.sensitivity.classifier import Classifier
from router.sensitivity.detectors import (
    bank_account,
    card,
    cn_id,
    email,
    health,
    iban,
    marker,
    passport,
    phone,
    secret,
    ssn,
)
from router.sensitivity.hints import DIGIT, SPACE, ci
from router.sensitivity.prefilter import CANARY, COUNTED, LONG, Prefilter
from tests.test_router_detectors import NEGATIVE, POSITIVE, PUBLIC

DATA = Path(__file__).resolve().parents[1] / "recipes/data/sensitivity"
ROWS = [json.loads(line) for f in ("train", "eval", "calib") for line in
        (DATA / f"{f}.jsonl").read_text().splitlines() if line.strip()]  # fmt: skip
EVERY_CHAR = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(ClassifierConfig(), RouterMetrics(), None)


def _re2_count(pattern: str, text: str) -> int:
    return len(re2.findall(pattern, text))


@pytest.mark.parametrize(("python", "hint"), [(r"\d", DIGIT), (r"\s", SPACE)])
def test_re2_classes_cover_every_char_python_accepts(python: str, hint: str) -> None:
    accepted = "".join(re.findall(python, EVERY_CHAR))
    assert len(accepted) > 20  # sanity: Unicode digits / spaces beyond ASCII are in there
    assert _re2_count(hint, accepted) == len(accepted)


@pytest.mark.parametrize("letter", "abcdefghijklmnopqrstuvwxyz")
def test_ci_accepts_every_char_python_ignorecase_folds(letter: str) -> None:
    folded = "".join(re.findall(f"(?i){letter}", EVERY_CHAR))
    assert _re2_count(ci(letter), folded) == len(folded)
    assert _re2_count(ci(letter), "".join(c for c in EVERY_CHAR[:0x3000] if c not in folded)) == 0


def test_mrn_value_class_covers_pythons_ignorecase_class() -> None:
    accepted = "".join(re.findall(r"(?i)[A-Z0-9-]", EVERY_CHAR))
    assert _re2_count(health._VALUE.removesuffix("*[0-9]"), accepted) == len(accepted)


def test_ci_rejects_patterns_it_cannot_fold_faithfully() -> None:
    with pytest.raises(ValueError, match="literal letters"):
        ci(r"[a-z]+")
    with pytest.raises(ValueError, match="literal letters"):
        ci(r"\bword")


def test_scan_equals_the_full_scan_on_the_whole_data_set(clf: Classifier) -> None:
    texts = [r["text"] for r in ROWS] + [t for v in (*POSITIVE.values(), *NEGATIVE.values())
                                         for t in v] + PUBLIC  # fmt: skip
    differ = [t[:60] for t in texts if clf.scan([t]) != clf.scan_all([t])]
    assert differ == []
    assert clf.scan(texts) == clf.scan_all(texts)  # many texts in one request, too
    assert clf._prefilter.full_scans == 0


def test_documented_behaviour_holds_through_the_fast_path(clf: Classifier) -> None:
    # every validated identifier example of the data set is found, by its own detector
    for category, label in {"card": "card", "iban": "iban", "cnid": "cn_id"}.items():
        rows = [r for r in ROWS if r["category"] == category]
        assert rows and all(label in clf.scan([r["text"]]) for r in rows), category
    # public prompts about the same subjects, and Luhn-failing numbers, stay clean
    for category in ("card_about", "general", "math", "recipes", "travel", "secrets_about"):
        rows = [r for r in ROWS if r["category"] == category]
        assert rows and not any(clf.scan([r["text"]]) for r in rows), category
    assert not any("card" in clf.scan([r["text"]]) for r in ROWS if r["category"] == "luhn_fail")


def test_most_public_texts_need_no_detector_at_all(clf: Classifier) -> None:
    """The point of the prefilter: plain prompts pass the RE2 pass with no hint present."""
    pre = clf._prefilter
    public = [r["text"] for r in ROWS if r["label"] == "public"]
    runs = [sum(need & pre.present(t) == need for _, _, need in pre.parts) for t in public]
    assert sum(r == 0 for r in runs) > len(public) / 2


@pytest.mark.parametrize(
    ("text", "label"),
    [("MRN stands for medical record number", "health"), ("How do I reset my password?", "secret"),
     ("which password manager? api_key docs", "secret"), ("the years 2019-2023 were busy", "card"),
     ("编号110105194912310021999", "cn_id"), ("passport photos cost $15", "passport")],
)  # fmt: skip
def test_prose_about_a_subject_needs_no_full_check(clf: Classifier, text: str, label: str):
    """Precision, not safety: these would run the expensive checks if a hint were loose (a
    suffix bound to one alternative only once let "MRN" alone through)."""
    pre = clf._prefilter
    assert label not in {pre.labels[i] for i, _ in pre.plan(pre.present(text))}


def test_an_unknown_re2_result_runs_every_detector() -> None:
    """google-re2's Set.Match drops RE2's error flag (a DFA out of memory looks like "no
    match"): without the canary in the result, the prefilter must assume every hint."""

    class FailingSet:  # what re2.Set.Match returns when RE2::Set::Match failed
        def Match(self, text: bytes) -> None:
            return None

    pre = Prefilter(list(registry.all_detectors().values()))
    assert pre.scan(["card 4111 1111 1111 1111"]) == ("card",) and pre.full_scans == 0
    pre.set = FailingSet()
    assert pre.scan(["card 4111 1111 1111 1111"]) == ("card",)
    assert pre.full_scans == 1


def test_lone_surrogates_and_long_texts_scan_like_the_full_scan(clf: Classifier) -> None:
    odd = "\ud83d broken emoji, then card 4111 1111 1111 1111 and 身份证号11010519491231002X"
    assert clf.scan([odd]) == clf.scan_all([odd]) == ("card", "cn_id")
    long = "\n".join(r["text"] for r in ROWS if r["label"] == "public")[:200_000]
    assert clf.scan([long]) == clf.scan_all([long])


FILLER = "\n".join(r["text"] for r in ROWS if r["label"] == "public")[: LONG + 100]


def test_long_texts_use_a_set_without_counted_repeats() -> None:
    """The DFA-friendly Set for long texts: no shape hint survives, word hints all do."""
    pre = PREFILTER
    assert len(pre.long_patterns) == len(pre.set_patterns)
    for short, long in zip(pre.set_patterns, pre.long_patterns, strict=True):
        assert long == (CANARY if COUNTED.search(short) else short)
        assert not COUNTED.search(long)
    assert sum(p == CANARY for p in pre.long_patterns) > 5  # the card, IBAN, ... shapes


@pytest.mark.parametrize(
    "body",
    [base64.b64encode(bytes(range(256)) * 200).decode(), "0123 4567-89 (12) +3 " * 2000,
     "AB12 CDEF 3456 GH78 " * 2000, FILLER],
    ids=["base64", "digit soup", "upper+digits", "prose"],
)  # fmt: skip
def test_long_texts_scan_like_the_full_scan(clf: Classifier, body: str) -> None:
    for secret_bit in ["", " card 4111 1111 1111 1111", " 身份证号11010519491231002X",
                       " my SSN is 167137280", " password=hunter2x"]:  # fmt: skip
        text = body + secret_bit
        assert len(text.encode()) >= LONG
        assert clf.scan([text]) == clf.scan_all([text])


def test_replacing_the_detectors_rebuilds_the_prefilter() -> None:
    clf = Classifier(ClassifierConfig(detectors=["iban"]), RouterMetrics(), None)
    assert clf.scan(["card 4111 1111 1111 1111"]) == ()
    clf.detectors = registry.select(["card", "iban"])
    assert clf.scan(["card 4111 1111 1111 1111"]) == ("card",)


# Fragments that sit at the edges of the hints: examples, their digits and words cut apart,
# Unicode digits (Arabic-Indic, fullwidth, Devanagari), letters Python folds onto i/s/k.
EXAMPLES = [t for v in (*POSITIVE.values(), *NEGATIVE.values()) for t in v]
PIECES = sorted({p for t in EXAMPLES for p in re.split(r"(\W+)", t) if p})
ODD = ["٣", "３", "४", "İ", "ı", "ſ", "\u212a", "\u00a0", "\u3000", "\n", "-", "+", "@", "."]
# context words next to numbers, the way the context detectors need them
WORDS = ["tel", "Tel.", "SSN", "routing", "ABA", "account", "a/c", "passport", "phone", "call me",
         "contact", "my", "MY", "patient", "MRN", "mrn", "password", "联系", "电话", "护照",
         "账号", "社安号", "我的", "银行", "路由号", "手机", "号码"]  # fmt: skip
NUMBERS = ["167137280", "021000021", "(650) 253-0000", "13800138000", "+44 20 7031 3000",
           "X12345678", "C05HL0YV8", "12345678", "4111 1111 1111 1111", "11010519491231002X",
           "219-09-9998", "DE89 3704 0044 0532 0130 00", "00123456", "jane.doe@gmail.com",
           "٣٧٨٠٩٤٦١٧", "１２３４５６７８"]  # fmt: skip
SEPS = ["", " ", ": ", "\n", "，", "\u00a0", "-", " is ", "\u3000", "x"]
in_context = st.tuples(*(st.sampled_from(x) for x in (SEPS, WORDS, SEPS, NUMBERS, SEPS)))
fragment = st.one_of(
    st.sampled_from(EXAMPLES), st.sampled_from(PIECES), st.sampled_from(ODD),
    st.text(alphabet="0123456789 -()+.٣３ABCXxİıſ", max_size=20), in_context.map("".join),
)  # fmt: skip
texts = st.lists(fragment, min_size=1, max_size=8).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
@example(text="3-123456789012")  # a card whose first group is one digit
@example(text="31-23456789012")  # ... or two
def test_a_part_that_fires_always_had_its_hints(text: str) -> None:
    pre = PREFILTER
    got = pre.present(text)
    for i, found, need in pre.parts:
        if need & got != need:
            assert not found(text), f"{pre.labels[i]} fired without its hints: {text!r}"


def test_every_context_word_next_to_every_number_keeps_its_hints() -> None:
    """Exhaustive over a small grid (word, separator, number, what follows): the fences and
    context hints are where a slip would hide, and random draws hit a given cell rarely."""
    after = ["", " ", "\n", "x", "-", "\u00a0", "5"]
    for word in WORDS:
        for sep in ["", " ", ": ", "\n", " is "]:
            for number in NUMBERS:
                for end in after:
                    test_a_part_that_fires_always_had_its_hints.hypothesis.inner_test(
                        text=f"{word}{sep}{number}{end}"
                    )


def every_alternative(pattern: re.Pattern[str]) -> list[str]:
    """One string per path through `pattern`'s alternations and optional parts (a class
    gives its first character, `\\w+` one letter): every word a context regex lists."""

    def expand(items) -> list[str]:
        out = [""]
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                options = [chr(av)]
            elif name == "BRANCH":
                options = [w for alt in av[1] for w in expand(alt)]
            elif name == "SUBPATTERN":
                options = expand(av[3])
            elif name == "MAX_REPEAT":
                options = [w * max(av[0], 1) for w in expand(av[2])] + [""] * (av[0] == 0)
            elif name == "IN":
                first = av[0]
                options = [chr(first[1][0] if str(first[0]) == "RANGE" else first[1])]
                options = ["a"] if str(first[0]) == "CATEGORY" else options
            elif name == "AT":
                options = [""]
            else:
                raise AssertionError(f"unexpected {name} in {pattern.pattern!r}")
            out = [a + b for a in out for b in options]
        return out

    return expand(re._parser.parse(pattern.pattern, pattern.flags))


# every detector that needs a context word, with a candidate it accepts next to one
CONTEXT_CASES = [
    (email.DETECTOR, ["jane.doe@gmail.com"]), (bank_account.ACCOUNT, ["12345678"]),
    (bank_account.ROUTING, ["021000021"]), (passport.DETECTOR, ["X12345678"]),
    (phone.IN_CONTEXT, ["(650) 253-0000"]), (ssn.DETECTOR.parts[1], ["167137280"]),
    (health.DIAGNOSIS, every_alternative(health.DIAGNOSIS.pattern)),
]  # fmt: skip


def test_every_word_of_a_context_pattern_keeps_its_hints() -> None:
    """Every word each context regex lists (from the regex itself), in three cases, before
    and after a candidate: a word the hint forgot ("reach him" once) fails here."""
    for detector, values in CONTEXT_CASES:
        words = every_alternative(detector.context)
        assert len(words) >= 3
        for word in {w for base in words for w in (base, base.upper(), base.title())}:
            for value in values:
                for text in (f"{word} {value}", f"{value}: {word}", f"{word}\n{value}"):
                    assert detector.found(text), text
                    test_a_part_that_fires_always_had_its_hints.hypothesis.inner_test(text=text)
    for word in every_alternative(marker.DETECTOR.pattern):  # a marker is its own context
        assert marker.DETECTOR.found(f"({word.upper()})"), word
        test_a_part_that_fires_always_had_its_hints.hypothesis.inner_test(text=word)


def test_reach_him_is_an_email_context() -> None:
    assert CLF.scan(["reach him at jane.doe@gmail.com"]) == ("email",)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_fast_scan_equals_full_scan_on_generated_texts(text: str) -> None:
    assert CLF.scan([text]) == CLF.scan_all([text])


# FIRST_CHAR rewrites (detector.py): each pattern as it was before, and where it lives now
BEFORE = {
    "card": (card.PATTERN, r"(?<![\dA-Za-z])(?P<v>\d(?:[ -]?\d){12,})(?![\dA-Za-z])"),
    "account": (bank_account.ACCOUNT.pattern,
                r"(?<![\dA-Za-z])(?P<v>\d(?:[ -]?\d){5,19})(?![\dA-Za-z])"),
    "routing": (bank_account.ROUTING.pattern, r"(?<![\dA-Za-z])(?P<v>\d{9})(?![\dA-Za-z])"),
    "cn_id": (cn_id.PATTERN, r"(?<![0-9A-Za-z])(?P<v>[1-9]\d{16}[\dXx])(?![0-9A-Za-z])"),
    "iban": (iban.PATTERN,
             r"(?<![A-Za-z0-9])(?P<v>[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])"),
    "passport": (passport.PATTERN,
                 r"(?<![A-Za-z0-9])(?P<v>[A-Z][A-Z0-9]{6,8}|\d{9})(?![A-Za-z0-9])"),
    "phone": (phone.PATTERN, r"(?<![A-Za-z0-9_+])(?P<v>\+?\(?\d[\d ().-]{6,18}\d)(?![\d])"),
    "phone_intl": (phone.INTERNATIONAL.pattern,
                   r"(?<![A-Za-z0-9_+])(?P<v>\+\d[\d ().-]{7,18}\d)(?!\d)"),
    "aws": (secret.PARTS[0].pattern, r"(?<![A-Z0-9])(?P<v>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])"),
    "ssn": (ssn.PATTERN, r"(?<![\d-])(?P<v>\d{3}[- ]\d{2}[- ]\d{4})(?![\d-])"),
    "ssn_bare": (ssn.BARE, r"(?<![\d-])(?P<v>\d{9})(?![\d-])"),
}  # fmt: skip


def _same_matches(text: str) -> None:
    for name, (now, before) in BEFORE.items():
        old = [(m.span(), m.groupdict()) for m in re.finditer(before, text)]
        new = [(m.span(), m.groupdict()) for m in now.finditer(text)]
        assert new == old, f"{name} differs on {text!r}"


def test_first_char_rewrites_match_like_the_patterns_they_replaced() -> None:
    assert all(now.pattern != before for now, before in BEFORE.values())
    for text in [r["text"] for r in ROWS] + EXAMPLES:
        _same_matches(text)
    for word in WORDS:  # every number right after / before every kind of neighbour
        for number in NUMBERS:
            for edge in ["", " ", "x", "X", "_", "+", "-", "(", "5", "٣", "A1", "x+", "1(", "_+("]:
                _same_matches(f"{edge}{number}{edge}{word}{number}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_first_char_rewrites_on_generated_texts(text: str) -> None:
    _same_matches(text)


CLF = Classifier(ClassifierConfig(), RouterMetrics(), None)
PREFILTER = CLF._prefilter


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_fast_scan_equals_full_scan_on_generated_long_texts(text: str) -> None:
    long = FILLER + text
    assert CLF.scan([long]) == CLF.scan_all([long])
    many = [text] + [FILLER[i : i + 4000] for i in range(0, LONG, 4000)]  # long in total
    assert CLF.scan(many) == CLF.scan_all(many)
    test_a_part_that_fires_always_had_its_hints.hypothesis.inner_test(text=long)
