"""IBANs: country code, check digits, BBAN; valid only if ISO 13616 mod-97 and the country's
format agree (python-stdnum)."""

import re

from stdnum import iban

from router.sensitivity.detector import DIGITS, Detector
from router.sensitivity.hints import DIGIT, fenced

PATTERN = re.compile(  # FIRST_CHAR
    r"(?P<v>[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])"
)

HINT = fenced(rf"[A-Z]{{2}}{DIGIT}{{2}}(?: ?[A-Z0-9]){{11,30}}", "A-Za-z0-9", "A-Za-z0-9")

DETECTOR = Detector("iban", PATTERN, iban.is_valid, hint=DIGITS, requires=(HINT,))
