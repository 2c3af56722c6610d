"""Passport numbers: a passport-shaped token (1-2 letters + 6-9 digits, or 9 digits) next to
the word passport / 护照; the shape alone is too common (SKUs, tickets) to count."""

import re

from router.sensitivity.detector import DIGITS, Detector, digits

PATTERN = re.compile(r"(?<![A-Za-z0-9])(?P<v>[A-Z]{1,2}\d{6,9}|\d{9})(?![A-Za-z0-9])")
CONTEXT = re.compile(r"(?i)\bpassports?\b|护照")

DETECTOR = Detector(
    "passport", PATTERN, lambda v: len(set(digits(v))) > 1, CONTEXT, window=40, hint=DIGITS
)
