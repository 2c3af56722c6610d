"""E-mail addresses next to personal context (my, his, customer, patient, 我的, 客户, ...):
a project's support address in documentation is not personal data, a customer's is."""

import re

from router.sensitivity.detector import Detector
from router.sensitivity.hints import any_of, exact, words

PATTERN = re.compile(r"(?a)(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")
CONTEXT = re.compile(
    r"(?i)\b(my|me|his|her|their|personal|private|home|customer|patient|employee|client|"
    r"applicant|user's|wife|husband|reach (?:me|him|her))\b|我|他|她|客户|患者|员工|私人|个人"
)

HINTS = (  # "@host." (every address has one), and a context word
    r"@[A-Za-z0-9-]+\.[A-Za-z0-9-]",
    any_of(
        words(
            "my|me|his|her|their|personal|private|home|customer|patient|employee|client"
            "|applicant|user's|wife|husband|reach (?:me|him|her)"
        ),
        exact("我", "他", "她", "客户", "患者", "员工", "私人", "个人"),
    ),
)

DETECTOR = Detector("email", PATTERN, context=CONTEXT, window=60, requires=HINTS)
