"""What the classifier reads of a request: the body's one reading and all of its strings,
normalised and decoded text, and windows that cover every part of a long text."""

from __future__ import annotations

import base64
import itertools
import json
import sys
import unicodedata
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import ingress, jsonbody
from router.context import Api, RequestContext
from router.errors import RouterError
from router.normalize import digit_variants, normalize
from router.sensitivity import views
from router.sensitivity.encodings import BASE64_RUN, ESCAPES, decoded
from router.sensitivity.views import PERCENT, forms, read
from router.sensitivity.windows import Windows, pack, scan_budget, seams, slide
from tests.fixtures.tiny_model import tokenizer_dir

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=3),
    max_leaves=10,
)  # fmt: skip


def _context(api: Api, body: bytes, ctype: str = "application/json") -> RequestContext:
    ctx = RequestContext("r", api, body, ctype, "*/*", {})
    if api is Api.invocations:
        ingress._read_invocation(ctx)
    else:
        ingress._read_openai(ctx)
    return ctx


def _all_strings(value) -> list[str]:
    """The reference walk: recursion, every key and value, numbers as text."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_all_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    return []


BIG = "x" * jsonbody.BIG_BODY  # a body this long is parsed another way (jsonbody.py)


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(st.text(max_size=6), JSON, max_size=4),
    content=st.text(max_size=20),
    big=st.booleans(),
)
def test_every_string_of_a_forwarded_body_is_classified(extra, content, big):
    payload = {**extra, "messages": [{"role": "user", "content": content, "x": extra}]}
    if big:
        payload["messages"].append({"role": "user", "content": BIG})
    body = json.dumps(payload).encode()
    ctx = _context(Api.chat, body)
    assert ctx.body == body  # forwarded as it came
    assert sorted(ctx.texts + ctx.fields) == sorted(_all_strings(json.loads(body)))


@settings(max_examples=100, deadline=None)
@given(value=JSON, path=st.lists(st.sampled_from(["a", "b", 0]), max_size=6), big=st.booleans())
def test_a_duplicate_key_at_any_depth_is_refused(value, path, big):
    inner = '{"k": 1, "k": 2}'
    for step in reversed(path):
        inner = f'{{"{step}": {inner}}}' if isinstance(step, str) else f"[{inner}]"
    body = json.dumps({"messages": [], "v": value, "pad": BIG if big else ""})
    body = body[:-1] + f', "z": {inner}}}'
    with pytest.raises(RouterError, match="duplicate key"):
        jsonbody.read_object(body.encode())


@pytest.mark.parametrize("pad", ["", BIG])
def test_keys_in_strings_and_escapes_are_not_counted_as_keys(pad):
    body = r'{"a": "x\": 1, \"b\": ", "c": ["d:", {"e\\": ":"}], "f" : {}, "p": "PAD"}'
    assert jsonbody.read_object(body.replace("PAD", pad).encode())["f"] == {}


@pytest.mark.parametrize("pad", [b"", BIG.encode()])
@pytest.mark.parametrize("depth", [jsonbody.MAX_DEPTH + 1, 2_000, 50_000])
def test_deep_nesting_is_a_400_not_a_crash(depth, pad):
    head = b'{"p": "' + pad + b'", "a": '
    with pytest.raises(RouterError, match="nested deeper") as err:
        jsonbody.read_object(head + b"[" * depth + b"]" * depth + b"}")
    assert err.value.status == 400
    assert jsonbody.read_object(head + b"[" * 60 + b"]" * 60 + b"}")


def test_invocation_bodies_of_every_kind_are_read_as_text_or_fail_closed():
    ndjson = b'{"a": "card 4111"}\n{"b": ["x"]}\n'
    assert _context(Api.invocations, ndjson, "application/x-ndjson").texts == [
        "a", "card 4111", "b", "x"
    ]  # fmt: skip
    utf16 = "card 4111 1111 1111 1111".encode("utf-16")
    assert _context(Api.invocations, utf16, "text/plain; charset=utf-16").texts == [
        "card 4111 1111 1111 1111"
    ]
    assert _context(Api.invocations, b"plain words", "application/octet-stream").texts == [
        "plain words"
    ]
    for binary in (utf16, b"\x89PNG\x00"):  # UTF-16 read as UTF-8 would hide its digits
        assert _context(Api.invocations, binary, "application/octet-stream").opaque
    with pytest.raises(RouterError, match="unknown charset"):
        _context(Api.invocations, b"x", "text/plain; charset=base64")


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("４５３９ １４８８ ０３４３ ６４６７", "4539 1488 0343 6467"),  # full-width digits
        ("Ｃｏｎｆｉｄｅｎｔｉａｌ", "Confidential"),  # full-width letters
        ("con\u200bfi\u200cden\u200dtial\u2060\ufeff", "confidential"),  # format characters
        ("c\u043enfid\u0435nti\u0430l", "confidential"),  # Cyrillic look-alikes
        ("\u0399\u0392\u0391\u039d DE89", "IBAN DE89"),  # Greek look-alikes
        ("४५३९ ٤٥٣٩", "4539 4539"),  # other scripts' digits
        ("4\u20e35\u03386\x007", "4567"),  # combining marks, controls
        ("内部机密，请勿外传", "内部机密,请勿外传"),  # CJK is left as it is (NFKC punctuation)
        ('"q" | `x` plain ASCII', '"q" | `x` plain ASCII'),  # ASCII is never folded
    ],
)
def test_normalize(raw, plain):
    assert normalize(raw) == plain


def test_digit_groups_are_read_spaced_and_joined():
    assert digit_variants("id 110105.19491231.002X, card 4539_1488_0343_6467") == [
        "id 110105 19491231 002X, card 4539 1488 0343 6467",
        "id 11010519491231002X, card 4539148803436467",
    ]
    assert digit_variants("version 1.2, pi 3.14159") == []


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_base64_and_percent_runs_decode_to_their_text(text):
    b64 = base64.b64encode(text.encode()).decode()
    for encoded in (b64, b64.rstrip("="), base64.urlsafe_b64encode(text.encode()).decode()):
        if len(encoded.rstrip("=")) >= 16:
            assert text in decoded(f"log {encoded} end")
    quoted = urllib.parse.quote(text, safe="")
    if "%" in quoted:
        assert any(text in found for found in decoded(f"GET /?q={quoted} HTTP/1.1"))


def test_random_tokens_and_words_do_not_decode():
    assert decoded("sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == []
    assert decoded("internationalization 100% sure, 50% off") == []


def test_the_model_reads_the_conversation_and_the_prose_of_other_fields():
    secret = base64.b64encode(b"the merger closes friday").decode()
    view = read(["Hello", f"log {secret}"], ["user", "gpt-4o", "A tool that files expenses"])
    assert view.prose == ["Hello", f"log {secret}", "the merger closes friday",
                          "A tool that files expenses"]  # fmt: skip
    assert "user\ngpt-4o\nA tool that files expenses" in view.rules


@pytest.fixture(scope="module")
def windows() -> Windows:
    from tokenizers import Tokenizer

    return Windows(Tokenizer.from_file(str(tokenizer_dir() / "tokenizer.json")), 128)


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(0, 400), min_size=1, max_size=8), data=st.data())
def test_every_passage_of_up_to_a_stride_lies_in_one_window(lengths, data):
    width, stride = 126, 63
    tokens, next_id = [], 1
    for n in lengths:
        tokens.append(list(range(next_id, next_id + n)))
        next_id += n
    units = pack(tokens, width)
    found = [w for u in units for w in slide(u, width, stride)]
    found += list(seams(units, width, stride))
    assert all(len(w) <= width for w in found)
    total = next_id - 1
    if total:
        start = data.draw(st.integers(1, total))
        span = set(range(start, min(start + stride, total + 1)))
        assert any(span <= set(w) for w in found)
        assert len(found) <= total / stride + 2 * len(units) + 1


def test_windows_wrap_special_tokens_and_stop_at_the_budget(windows):
    short = windows(["What is the capital of France?"], 1000)
    assert short == [tuple(windows.tokenizer.encode("What is the capital of France?").ids)]
    long = [" ".join(f"{i}" for i in range(700))]  # 1,000+ tokens, no two windows alike
    (count,) = map(len, windows.tokens(long, 10**6))
    assert windows(long, count - 1) is None
    cut = windows(long, count)
    assert len(cut) == -(-(count - 126) // 63) + 1 and all(len(w) <= 128 for w in cut)
    assert scan_budget(6 * 1024 * 1024) == 49_152


def test_a_base64_json_log_record_with_escapes_is_read_in_full():
    record = base64.b64encode(json.dumps({"msg": "内部机密 4111"}).encode()).decode()
    assert any("内部机密 4111" in form for form in forms(f"event {record}"))


# Pieces of long texts (views.parts): what they read is what the whole text reads.
PIECE_ATOMS = ["the report ", "weather", " ", "\n", "，", "。", "天气很好", "ｆｕｌｌ", "／", "＋",
               "e\u0301", "\u200b", "\x01", "😀", "\u1100\u1161", "ｶﾞ", "⑴", "%41", "％４１",
               "\\u0041", "4111.1111", base64.b64encode(b"the merger closes friday").decode(),
               urllib.parse.quote("内部机密 card 4111"), ",", "-", "=", "abc"]  # fmt: skip
long_texts = st.lists(st.sampled_from(PIECE_ATOMS), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=long_texts, size=st.integers(8, 120), overlap=st.integers(1, 40))
def test_pieces_are_normalised_decoded_and_tokenized_like_the_whole_text(
    windows, text, size, overlap
):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views, "OVERLAP_CHARS", overlap)
        pieces = list(views.pieces(text, size))
    assert "".join(pieces) == text
    plain = [normalize(p) for p in pieces]
    whole = normalize(text)
    assert "".join(plain) == whole
    cuts = list(itertools.accumulate(len(p) for p in plain[:-1]))
    for run in [*BASE64_RUN.finditer(whole), *ESCAPES.finditer(whole)]:
        assert not any(run.start() < cut < run.end() for cut in cuts)  # no run is cut
    raw_cuts = list(itertools.accumulate(len(p) for p in pieces[:-1]))
    for cut in raw_cuts:  # unless after whitespace, no "%" within `overlap` of a cut
        assert text[cut - 1].isspace() or "%" not in normalize(text[cut - overlap : cut + overlap])
    encode = windows.tokenizer.encode
    ids = [i for p in plain for i in encode(p, add_special_tokens=False).ids]
    assert ids == encode(whole, add_special_tokens=False).ids


def test_only_three_characters_normalise_to_a_percent_sign():
    found = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF
             and "%" in unicodedata.normalize("NFKC", chr(c))]  # fmt: skip
    assert all(PERCENT.match(c) for c in found) and len(found) == 3


SECRETS = ["card 4111 1111 1111 1111", "IBAN DE89 3704 0044 0532 0130 00", "SSN 219-09-9998",
           "身份证 11010519491231002X", "CONFIDENTIAL", "内部机密", "AKIAQYLPMN5HHHFPZAM2",
           "my email is jane.doe@example.org"]  # fmt: skip
HIDE = [
    lambda s: s,
    lambda s: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s),  # full width
    lambda s: "\u200b".join(s),
    lambda s: s.replace(" ", "."),
    lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: urllib.parse.quote(s, safe=""),
    lambda s: "event " + base64.b64encode(json.dumps({"msg": s}).encode()).decode(),
    lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
]


@st.composite
def long_requests(draw) -> tuple[list[str], list[str]]:
    """Texts and fields of filler (PIECE_ATOMS) with, maybe, a secret somewhere."""
    parts = [draw(long_texts) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        secret = draw(st.sampled_from(HIDE))(draw(st.sampled_from(SECRETS)))
        at = draw(st.integers(0, len(parts) - 1))
        cut = draw(st.integers(0, len(parts[at])))
        parts[at] = f"{parts[at][:cut]} {secret} {parts[at][cut:]}"
    split = draw(st.integers(1, len(parts)))
    return parts[:split], parts[split:]


@pytest.fixture(scope="module")
def readers(tiny_classifier_dir):
    from router.config import ClassifierConfig, ModelConfig
    from router.metrics import RouterMetrics
    from router.sensitivity.classifier import Classifier, build_classifier

    model = ModelConfig(path=tiny_classifier_dir / "model.int8.onnx")
    with_model = build_classifier(ClassifierConfig(model=model), RouterMetrics())
    yield Classifier(ClassifierConfig(), RouterMetrics(), None), with_model
    with_model.close()


@settings(max_examples=300, deadline=None)
@given(request=long_requests(), size=st.integers(16, 200), budget=st.integers(1, 400))
def test_a_long_request_read_in_pieces_misses_nothing_the_whole_reading_finds(
    readers, request, size, budget
):
    """With pieces far smaller than in production (and the overlap above the detectors'
    match and context), `read_long` finds a label wherever `read` does (with the model, it
    may stop at the token budget first: confidential too); when none fires, the model gets
    the texts of the whole reading (in text order, so perhaps packed otherwise), and both
    are over the token budget or neither. Where the text has escapes, a piece's text with
    them read starts at the tail before it, so the model gets more."""
    texts, fields = request
    rules, model = readers
    model.scan_tokens = budget
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views, "PIECE_CHARS", size)
        mp.setattr(views, "OVERLAP_CHARS", 200)
        long_rules, long_model = rules.read_long(texts, fields), model.read_long(texts, fields)
        model_texts: dict[int, list[str]] = {}
        for part in views.parts(texts, fields):
            for n, piece in part.prose:
                model_texts.setdefault(n, []).append(piece)
    whole = read(texts, fields)
    if rules.read(texts, fields)[0]:
        assert long_rules[0]
        assert long_model[0] or long_model[1] is None  # confidential: a label, or too long
    elif not long_model[0] and not any("\\u" in t for t in whole.rules):
        assert sorted("".join(p) for p in model_texts.values()) == sorted(whole.prose)
        assert (long_model[1] is None) == (model.read(texts, fields)[1] is None)
