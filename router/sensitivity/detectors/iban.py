"""IBANs: country code, check digits, BBAN; valid only if ISO 13616 mod-97 and the country's
format agree (python-stdnum)."""

import functools
import re

from stdnum import iban, numdb
from stdnum.iso7064 import mod_97_10
from stdnum.util import get_cc_module

from router.sensitivity.detector import Detector
from router.sensitivity.hints import DIGIT, fenced

PATTERN = re.compile(  # FIRST_CHAR
    r"(?P<v>[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])"
)

HINT = fenced(rf"[A-Z]{{2}}{DIGIT}{{2}}(?: ?[A-Z0-9]){{11,30}}", "A-Za-z0-9", "A-Za-z0-9")


def _valid(value: str) -> bool:
    """stdnum's `iban.is_valid`, with the country's entry in stdnum's IBAN registry looked up
    once per country (`_country`): stdnum scans that table for every IBAN, ~20 of the ~55 µs
    a real one costs. Countries with a national check of their own in stdnum (BE, ES, ME,
    NO) take stdnum's whole path. Same answers (tests/test_router_detectors.py compares)."""
    if not value.isascii():  # full-width digits and the like: stdnum maps them to ASCII
        return iban.is_valid(value)
    number = value.replace(" ", "")  # stdnum's compact() for what the pattern lets through
    bban, national = _country(number[:2])
    if national:
        return iban.is_valid(number)
    return (
        bban is not None
        and mod_97_10.is_valid(number[4:] + number[:4])
        and bban.fullmatch(number[4:]) is not None
    )


@functools.lru_cache(maxsize=1024)  # country codes: at most 26 × 26
def _country(code: str) -> tuple[re.Pattern[str] | None, bool]:
    """The BBAN format stdnum's registry gives `code` (None: no IBAN country), and whether
    stdnum has a national IBAN check for it."""
    entry = numdb.get("iban").info(code)[0][1]
    if not entry:
        return None, False
    return _bban_pattern(entry.get("bban", "")), get_cc_module(code, "iban") is not None


def _bban_pattern(structure: str) -> re.Pattern[str]:
    """The registry's BBAN notation as a regex, as stdnum reads it: `4!n` four digits, `a`
    upper-case letters, `c` letters or digits."""
    chars = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
    return re.compile(
        re.sub(r"([1-9][0-9]*)!([nac])", lambda m: f"{chars[m[2]]}{{{m[1]}}}", structure)
    )


DETECTOR = Detector("iban", PATTERN, _valid, requires=(HINT,))
