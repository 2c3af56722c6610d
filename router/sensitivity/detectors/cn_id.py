"""Chinese resident identity card numbers (居民身份证): 18 characters, a real birth date and
region, ISO 7064 mod 11-2 check character (python-stdnum's cn.ric)."""

import re

from stdnum.cn import ric

from router.sensitivity.detector import DIGITS, Detector
from router.sensitivity.hints import DIGIT, fenced

PATTERN = re.compile(r"(?P<v>[1-9](?<![0-9A-Za-z][1-9])\d{16}[\dXx])(?![0-9A-Za-z])")  # FIRST_CHAR

HINT = fenced(rf"[1-9]{DIGIT}{{16}}[{DIGIT}Xx]", "0-9A-Za-z", "0-9A-Za-z")


def _valid(value: str) -> bool:
    """stdnum's check; where its region table raises KeyError (a few unusual codes), the
    checksum and birth date decide: a lookup bug must not hide an ID nor fail the request."""
    value = value.upper()
    try:
        return ric.is_valid(value)
    except KeyError:
        try:
            ric.get_birth_date(value)
        except ric.ValidationError:
            return False
        return value[-1] == ric.calc_check_digit(value)


DETECTOR = Detector("cn_id", PATTERN, _valid, hint=DIGITS, requires=(HINT,))
