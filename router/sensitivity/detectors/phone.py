"""Phone numbers: a candidate must be a valid number for its region (libphonenumber's rules
via `phonenumbers`) and either be written in international form (+CC) or sit next to a
phone word (phone, call me, mobile, 手机, 电话, ...); bare digit runs are left to others."""

import re

import phonenumbers

from router.sensitivity.detector import AnyOf, Detector
from router.sensitivity.hints import DIGIT, any_of, exact, fenced, words

PATTERN = re.compile(  # FIRST_CHAR; then what `\+?\(?\d` needs after that first character
    r"(?P<v>[+(\d](?<![A-Za-z0-9_+][+(\d])(?:(?<=\+)\(?\d|(?<=\()\d|(?<=\d))"
    r"[\d ().-]{6,18}\d)(?![\d])"
)
CONTEXT = re.compile(
    r"(?i)\b(phone|tel|telephone|mobile|cell|call (?:me|him|her)|text me|texted|whatsapp|fax"
    r"|contact)\b"
    r"|手机|电话|联系方式|联系|微信|号码"
)


def _valid(value: str) -> bool:
    """A valid number for its region, as parsed for any of the regions tried.

    `is_possible_number` (a length check, ~2 µs) runs before `is_valid_number` (~30 µs):
    a valid number is always possible, because libphonenumber keeps the lengths of every
    region sharing a calling code in that code's main region (checked over the installed
    metadata in tests/test_router_detectors.py). Digit runs of other identifiers next to
    a phone word (resident IDs, cards) then cost a parse per region, not a validation."""
    regions = (None,) if value.startswith("+") else ("US", "CN", "GB")
    for region in regions:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number):
            return True
    return False


INTERNATIONAL = Detector(
    "phone",
    re.compile(r"(?P<v>\+(?<![A-Za-z0-9_+]\+)\d[\d ().-]{7,18}\d)(?!\d)"),  # FIRST_CHAR
    _valid,
    requires=(fenced(rf"\+{DIGIT}[{DIGIT} ().-]{{7,18}}{DIGIT}", "A-Za-z0-9_+", "0-9"),),
)
CONTEXT_HINT = any_of(
    words(
        "phone|tel|telephone|mobile|cell|call (?:me|him|her)|text me|texted|whatsapp|fax|contact"
    ),
    exact("手机", "电话", "联系方式", "联系", "微信", "号码"),
)
IN_CONTEXT = Detector(
    "phone",
    PATTERN,
    _valid,
    CONTEXT,
    window=30,
    requires=(
        rf"{DIGIT}[{DIGIT} ().-]{{6}}",  # a digit and the next 6 of the candidate
        CONTEXT_HINT,
    ),
)
DETECTOR = AnyOf("phone", (INTERNATIONAL, IN_CONTEXT))
