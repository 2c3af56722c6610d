"""ingress.loads gives json.loads' value (types included) or its error, whichever parser ran."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import ingress
from router.errors import RouterError


def loads(text: str) -> object:
    """ingress.loads as json_object calls it (the body and the text decoded from it)."""
    return ingress.loads(text, text.encode("utf-8", "surrogatepass"))


def same(a: object, b: object) -> bool:
    """Equal with equal types all the way down (1 vs 1.0 and NaN count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


TRICKY = [
    '{"a": NaN, "b": Infinity, "c": -Infinity}',
    '{"a": 1e400, "b": -1e400, "c": 1e-400}',
    '{"a": "\\ud800", "b": "\\udc80x", "c": "\\ud83d\\ude00"}',
    '{"n": 1234567890123456789, "m": -9223372036854775809, "k": 18446744073709551616}',
    '{"card": 4111111111111111, "id": 110105194912310021}',
    '{"a": 1, "a": 2, "-0": -0, "f": -0.0, "e": 2.5E3, "u": "\\u00e9\\u4e2d\\n"}',
    '  {"deep": [[[[{"x": [true, false, null]}]]]]}  ',
    '{"text": "身份证号11010519491231002X", "émoji": "😀"}',
    '{"card": "4111 1111 1111 1111", "run": "12345678901234567890"}',
]


@pytest.mark.parametrize("text", TRICKY)
def test_loads_matches_the_standard_library(text: str) -> None:
    assert same(loads(text), json.loads(text))


@pytest.mark.parametrize(
    "text", ['{"a": }', '{"a": 1', "[1, 2,]", '{"a": NaNx}', "", "1 2", '\ufeff{"bom": 1}']
)
def test_loads_raises_the_standard_librarys_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (ours.value.lineno, ours.value.colno) == (theirs.value.lineno, theirs.value.colno)


def test_json_object_keeps_its_one_line_errors() -> None:
    with pytest.raises(RouterError, match="malformed JSON at line 1 column 7"):
        ingress.json_object(b'{"a": }')
    with pytest.raises(RouterError, match="must be a JSON object"):
        ingress.json_object(b"[1]")


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(min_value=-(10**25), max_value=10**25)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans())
def test_loads_matches_the_standard_library_on_generated_values(value, ascii_only) -> None:
    text = json.dumps({"v": value}, ensure_ascii=ascii_only)
    assert same(loads(text), json.loads(text))


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
)
def test_loads_reads_numbers_as_the_standard_library(number: str) -> None:
    assert same(loads(f'{{"n": {number}}}'), json.loads(f'{{"n": {number}}}'))
