"""US Social Security numbers in AAA-GG-SSSS form, checked against the SSA's rules
(no 000/666/9xx area, no 00 group or 0000 serial, no advertised numbers)."""

import re

from stdnum.us import ssn

from router.sensitivity.detector import DIGITS, Detector

PATTERN = re.compile(r"(?<![\d-])(?P<v>\d{3}[- ]\d{2}[- ]\d{4})(?![\d-])")

DETECTOR = Detector("ssn", PATTERN, lambda v: ssn.is_valid(v.replace(" ", "-")), hint=DIGITS)
