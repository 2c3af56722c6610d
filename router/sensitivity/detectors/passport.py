"""Passport numbers: a passport-shaped token (a letter + 6-8 letters/digits with two different
digits, e.g. E12345678 or C05HL0YV8, or 9 digits) next to
the word passport / 护照; the shape alone is too common (SKUs, tickets) to count."""

import re

from router.sensitivity.detector import Detector, digits
from router.sensitivity.hints import DIGIT, any_of, exact, words

# classic (E12345678, X1234567) and newer alphanumeric numbers (C05HL0YV8), or 9 digits
PATTERN = re.compile(  # FIRST_CHAR; then the rest of `[A-Z][A-Z0-9]{6,8}|\d{9}`
    r"(?P<v>[A-Z\d](?<![A-Za-z0-9][A-Z\d])(?:(?<=[A-Z])[A-Z0-9]{6,8}|(?<=\d)\d{8}))"
    r"(?![A-Za-z0-9])"
)
CONTEXT = re.compile(r"(?i)\bpassports?\b|护照")


def _valid(value: str) -> bool:
    return len(set(digits(value))) > 1  # at least two different digits: not a word


HINTS = (
    rf"[A-Z][A-Z0-9]{{6}}|{DIGIT}{{9}}",
    any_of(words("passports?"), exact("护照")),
)

DETECTOR = Detector("passport", PATTERN, _valid, CONTEXT, window=40, requires=HINTS)
