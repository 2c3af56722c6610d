"""Payment card numbers: 13-19 digits (spaces/dashes allowed), a known IIN range, Luhn-valid."""

import re

from stdnum import luhn

from router.sensitivity.detector import Detector, digits
from router.sensitivity.hints import DIGIT, fenced

PATTERN = re.compile(  # FIRST_CHAR
    r"(?P<v>[2-6](?<![\dA-Za-z][2-6])\d{2,3}(?:[ -]?\d){9,15})(?![\dA-Za-z])"
)


def _valid(value: str) -> bool:
    number = digits(value)
    return 13 <= len(number) <= 19 and len(set(number)) > 1 and luhn.is_valid(number)


# the first 13 digits of a candidate (the 4th IIN digit is a `[ -]?\d` without separator)
HINT = fenced(rf"[2-6]{DIGIT}{{2}}(?:[ -]?{DIGIT}){{10}}", "0-9A-Za-z")

DETECTOR = Detector("card", PATTERN, _valid, requires=(HINT,))
