"""Confidentiality markers a document carries: "Confidential", "Internal only",
"Attorney-client privileged", "Do not distribute", 内部机密, 绝密, 仅限内部 ...
("confidentiality" and "confidence" are other words and do not count)."""

import re

from router.sensitivity.detector import Detector
from router.sensitivity.hints import any_of, ci, exact

PATTERN = re.compile(
    r"(?i)\b(?:strictly confidential|confidential|internal(?: use)? only|for internal use"
    r"|attorney[- ]client privileged?|privileged (?:and|&) confidential"
    r"|do not (?:distribute|forward)"
    r"|not for (?:distribution|external)|trade secret|proprietary and confidential)\b"
    r"|内部机密|机密|绝密|秘密级|内部资料|仅限内部|内部使用|商业秘密|保密资料|请勿外传"
)

HINT = any_of(  # the pattern without \b ("strictly …", "privileged and …" hold "confidential")
    ci(
        "confidential|internal(?: use)? only|for internal use|attorney(?:-| )client"
        "|do not (?:distribute|forward)|not for (?:distribution|external)|trade secret"
    ),
    exact(
        "机密",
        "绝密",
        "秘密级",
        "内部资料",
        "仅限内部",
        "内部使用",
        "商业秘密",
        "保密资料",
        "请勿外传",
    ),
)

DETECTOR = Detector("marker", PATTERN, requires=(HINT,))
