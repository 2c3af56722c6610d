"""US Social Security numbers, checked against the SSA's rules (no 000/666/9xx area, no 00
group or 0000 serial, no advertised numbers): AAA-GG-SSSS anywhere, 9 bare digits only next
to "SSN" / "social security" / 社安号."""

import re

from stdnum.us import ssn

from router.sensitivity.detector import AnyOf, Detector
from router.sensitivity.hints import DIGIT, any_of, exact, fenced, words

PATTERN = re.compile(r"(?P<v>\d(?<![\d-]\d)\d{2}[- ]\d{2}[- ]\d{4})(?![\d-])")  # FIRST_CHAR
BARE = re.compile(r"(?P<v>\d(?<![\d-]\d)\d{8})(?![\d-])")  # only next to the word SSN
CONTEXT = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\b|社安号|社会安全号")


def _valid(value: str) -> bool:
    return ssn.is_valid(value.replace(" ", "-"))


# prefilter hints: the patterns fenced like their lookarounds, the context words without \b
SHAPED = fenced(rf"{DIGIT}{{3}}[- ]{DIGIT}{{2}}[- ]{DIGIT}{{4}}", "0-9-", "0-9-")
NINE = rf"{DIGIT}{{9}}"
WORDS = any_of(words("ssn|social security"), exact("社安号", "社会安全号"))

DETECTOR = AnyOf("ssn", (
    Detector("ssn", PATTERN, _valid, requires=(SHAPED,)),
    Detector("ssn", BARE, _valid, CONTEXT, window=30, requires=(NINE, WORDS)),
))  # fmt: skip
