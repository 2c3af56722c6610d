"""One normalisation pass before any rule or the model reads a text.

What a reader (or an upstream model) sees as the same characters must look the same to the
detectors: full-width digits and letters, ligatures and circled digits (NFKC); invisible
characters inside a word (format characters, Unicode category Cf: U+200B-U+200D, U+2060,
U+FEFF, bidi controls, tags; other controls, private-use and surrogate code points; combining
marks, which the model's uncased tokenizer strips anyway); and letters of other scripts that
look like Latin ones (Cyrillic "о", Greek "Ι"), folded to their Latin prototype with the
Unicode TR39 confusables table.

The fold comes from `disarm` (TR39 visual mapping, maintained, a Rust core: ~57 ns for a
call on ASCII). `confusable-homoglyphs`, the other TR39 package on PyPI, only detects
confusables (no skeleton function, a 900 KB JSON table loaded at import) and had no
release since 2024. The fold runs on non-ASCII runs only: TR39 also maps three ASCII
characters (`"` → `''`, `|` → `l`, backtick → `'`), which would change JSON-looking text
and the model's input for nothing.

Digit groups: rules accept digits separated by single spaces or dashes (cards, accounts,
phones); `digit_variants` rewrites other separators (dots, slashes, underscores, runs of
spaces, the plus of form encoding) as spaces, and also joins the groups (resident IDs are
written unbroken). The validators (Luhn, check digits, registries) then decide, as for the
plain form, so public numbers do not become identifiers.

Plain ASCII text without control characters (most prompts) is returned as it is.

The build trains, calibrates and evaluates the model on text passed through this same
function (`pipeline/data.py`): a model that learnt full-width Chinese punctuation and is
then shown its NFKC forms (`，` → `,`) scores differently from what its evaluation said.
"""

from __future__ import annotations

import re
import unicodedata

import re2
from disarm import normalize_confusables

ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but \t \n \r
SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone ones (JSON "\ud800"): not UTF-8, invisible
INVISIBLE = re2.compile(r"[\p{Cf}\p{Co}\p{Mn}\p{Me}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# Three or more digit groups with one separator kind between them that the rules do not
# read as a separator already (a single space or dash they do). Possessive repeats keep no
# backtracking state per group (a long run of groups would grow the stack with each).
DIGIT_GROUPS = re.compile(r"\d{1,8}+(?:(?:[._/·+]|[ \t]{2,}+|\t)\d{1,8}+){2,}+")
SEPARATOR = re.compile(r"[._/·+ \t]+")


def normalize(text: str) -> str:
    """NFKC, invisible characters removed, confusables folded to Latin (see module doc)."""
    if text.isascii():
        return ASCII_CONTROL.sub("", text) if ASCII_CONTROL.search(text) else text
    if SURROGATE.search(text):
        text = SURROGATE.sub("", text)
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return NON_ASCII.sub(_fold, text)


def _fold(run: re.Match[str]) -> str:
    return normalize_confusables(run.group().translate(DECIMALS))


class _Decimals(dict):
    """str.translate table: every Unicode decimal digit (category Nd: Devanagari, Arabic-
    Indic, ...) to its ASCII digit, filled as characters are met; TR39 maps only a few."""

    def __missing__(self, code: int) -> str:
        value = unicodedata.decimal(chr(code), None)
        self[code] = out = chr(code) if value is None else str(value)
        return out


DECIMALS = _Decimals()


def digit_variants(text: str) -> list[str]:
    """`text` with its separated digit groups spaced, and joined; [] when it has none."""
    if DIGIT_GROUPS.search(text) is None:
        return []
    spaced = DIGIT_GROUPS.sub(lambda m: SEPARATOR.sub(" ", m.group()), text)
    joined = DIGIT_GROUPS.sub(lambda m: SEPARATOR.sub("", m.group()), text)
    return [spaced, joined]
