"""Payment card numbers: 13-19 digits (spaces/dashes allowed), a known IIN range, Luhn-valid.

A card can follow other digit groups ("ref 555 0100 5555 5555 5555 4444"): the pattern takes
the whole run of groups and the validator tries every stretch of whole groups in it, so a
longer run that fails Luhn cannot hide the card at its end.
"""

import re

from stdnum import luhn

from router.sensitivity.detector import Detector
from router.sensitivity.hints import DIGIT, fenced

PATTERN = re.compile(  # FIRST_CHAR
    r"(?P<v>\d(?<![\dA-Za-z]\d)(?:[ -]?\d){12,})(?![\dA-Za-z])"
)
SEPARATOR = re.compile(r"[ -]")


def _valid(value: str) -> bool:
    groups = SEPARATOR.split(value)
    for first in range(len(groups)):
        if groups[first][0] not in "23456":
            continue
        number = ""
        for group in groups[first:]:
            number += group
            if len(number) > 19:
                break
            if len(number) >= 13 and len(set(number)) > 1 and luhn.is_valid(number):
                return True
    return False


# the first 13 digits of a candidate: a group starting 2-6, then a separator or none before
# each digit, as in PATTERN ("3-123456789012" is a candidate the validator accepts)
HINT = fenced(rf"[2-6](?:[ -]?{DIGIT}){{12}}", "0-9A-Za-z")

DETECTOR = Detector("card", PATTERN, _valid, requires=(HINT,))
