"""The build's model learns from the text the router's model will read.

A split's row, as the build trains, calibrates and evaluates on it, must be the text the
router hands its model for the same prompt: the router normalises before reading, so a
model trained on the file's own spelling (full-width Chinese punctuation, invisible
characters, look-alike letters) sees other tokens once deployed and decides otherwise.
Checked as a property on text made of exactly those characters, down to the token ids of
a short prompt's one window on the real model's tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data import read_jsonl
from pipeline.windows import windows
from router.errors import UserError
from router.normalize import normalize
from router.sensitivity.views import read
from router.sensitivity.windows import Windows
from tests.fixtures.tiny_model import load_tokenizer, tokenizer_dir

# what normalisation changes: full-width forms and CJK punctuation, zero-width and bidi
# characters, Cyrillic/Greek look-alikes, accents, ligatures; beside plain ASCII and CJK
ALPHABET = st.sampled_from(
    list("ab xyz09.,?") + list("，。？：；！（）「」、")
    + list("４５ＡＢｃ") + ["\u200b", "\u200d", "\u2060", "\ufeff", "\u202e"]
    + list("аеорсΙΟ") + list("éñüﬁ①") + list("机密报告财务数据")
)  # fmt: skip
TEXTS = st.text(ALPHABET, min_size=1, max_size=60).filter(lambda t: normalize(t).strip())


def _row(tmp: Path, text: str) -> str:
    path = tmp / "split.jsonl"
    path.write_text(json.dumps({"text": text, "label": "public"}) + "\n", encoding="utf-8")
    return read_jsonl(path, ["public", "confidential"])[0].text


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_a_rows_text_is_what_the_router_model_reads(tmp_path_factory, text):
    trained = _row(tmp_path_factory.mktemp("split"), text)
    assert read([text]).prose[0] == trained


def test_a_row_with_nothing_left_once_normalised_is_refused_with_its_line(tmp_path):
    with pytest.raises(UserError, match=r"split.jsonl:1: text: nothing left once normalised"):
        _row(tmp_path, "\u200b\ufeff ")


def test_a_short_prompts_window_has_the_ids_the_build_trained_on(tmp_path):
    from tokenizers import Tokenizer

    router_windows = Windows(Tokenizer.from_file(str(tokenizer_dir() / "tokenizer.json")), 128)
    tokenizer = load_tokenizer()

    @settings(max_examples=150, deadline=None)
    @given(text=TEXTS)
    def check(text: str) -> None:
        trained, _ = windows(tokenizer, [_row(tmp_path, text)], 128)
        served = router_windows(read([text]).prose, 10_000)
        assert [list(w) for w in served] == trained

    check()
