"""Bank account and routing numbers: digit runs only count next to banking words (account,
routing, IBAN-less transfers, 账号, 银行卡, 开户行 ...); a 9-digit number next to
"routing"/"ABA" must pass the ABA checksum (python-stdnum's us.rtn)."""

import re

from stdnum.us import rtn

from router.sensitivity.detector import AnyOf, Detector, digits
from router.sensitivity.hints import DIGIT, any_of, exact, words

ACCOUNT = Detector(
    "bank_account",
    re.compile(r"(?P<v>\d(?<![\dA-Za-z]\d)(?:[ -]?\d){5,19})(?![\dA-Za-z])"),  # FIRST_CHAR
    lambda v: len(set(digits(v))) > 1,
    re.compile(
        r"(?i)\b(account|acct|a/c|bank|checking|savings|sort code|bsb|wire to)\b"
        r"|账号|账户|帐号|帐户|银行卡|卡号|开户行|银行"
    ),
    window=25,
    requires=(  # the digit run, and a banking word somewhere
        rf"{DIGIT}(?:[ -]?{DIGIT}){{5}}",  # its first six digits
        any_of(
            words("account|acct|a/c|bank|checking|savings|sort code|bsb|wire to"),
            exact("账号", "账户", "帐号", "帐户", "银行卡", "卡号", "开户行", "银行"),
        ),
    ),
)
ROUTING = Detector(
    "bank_account",
    re.compile(r"(?P<v>\d(?<![\dA-Za-z]\d)\d{8})(?![\dA-Za-z])"),  # FIRST_CHAR
    rtn.is_valid,
    re.compile(r"(?i)\b(routing|aba|rtn)\b|路由号"),
    window=25,
    requires=(
        rf"{DIGIT}{{9}}",
        any_of(words("routing|aba|rtn"), exact("路由号")),
    ),
)
DETECTOR = AnyOf("bank_account", (ROUTING, ACCOUNT))
