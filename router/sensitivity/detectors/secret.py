"""Credentials and keys: AWS access keys, private key blocks, JWTs (the header must decode to
JSON with "alg"), GitHub / Stripe / Slack tokens, and `password=`-style assignments whose
value is not a placeholder (<your password>, ****, xxx)."""

import base64
import binascii
import json
import re

from router.sensitivity.detector import AnyOf, Detector
from router.sensitivity.hints import SPACE, ci, exact, fenced


def _jwt(value: str) -> bool:
    head = value.split(".", 1)[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "alg" in data


PLACEHOLDER = re.compile(
    r"(?i)^([<{$%\[(].*|\*+|x+|\.+|null|none|true|false|\?+|os\.|getenv|process\.env"
    r"|env\[|environ|config\.|settings\.|self\.|input\(|f\")"
    r"|.*(?:xxx|example|your[_-]?|placeholder|redacted|changeit|\.\.\.).*$"
)


def _assigned(value: str) -> bool:
    """A real value (has a digit or a symbol: "password is required" is prose), not a
    placeholder, an environment lookup or an example."""
    secret_like = any(ch.isdigit() for ch in value) or not value.isalpha()
    return secret_like and PLACEHOLDER.match(value) is None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


PARTS = (
    Detector(  # AWS access key ids; AWS's documentation example ends in EXAMPLE
        "secret",
        _re(r"(?P<v>A(?<![A-Z0-9]A)(?:KIA|SIA)[A-Z0-9]{16})(?![A-Z0-9])"),  # FIRST_CHAR
        lambda v: not v.endswith("EXAMPLE"),
        requires=(fenced(r"(?:AKIA|ASIA)[A-Z0-9]{16}", "A-Z0-9", "A-Z0-9"),),
    ),
    Detector(
        "secret",
        _re(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        requires=(exact("-----BEGIN "), exact("PRIVATE KEY")),  # " BLOCK" may follow
    ),
    Detector(
        "secret",
        _re(r"(?P<v>eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,})"),
        _jwt,
        requires=(exact(".eyJ"),),  # the payload segment's start
    ),
    Detector(
        "secret",
        _re(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{22,})"),
        requires=(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_",),
    ),
    Detector(
        "secret",
        _re(r"(?<![A-Za-z0-9_])(?:sk|rk)_live_[A-Za-z0-9]{16,}"),
        requires=(r"(?:sk|rk)_live_[A-Za-z0-9]{16}",),
    ),
    Detector(
        "secret",
        _re(r"(?<![A-Za-z0-9_])xox[abposr]-[A-Za-z0-9-]{10,}"),
        requires=(r"xox[abposr]-[A-Za-z0-9-]{10}",),
    ),
    Detector(  # OpenAI, Anthropic
        "secret",
        _re(r"(?<![A-Za-z0-9_-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}"),
        requires=(r"sk-[A-Za-z0-9_-]{32}",),  # "proj-"/"ant-" are in the class too
    ),
    Detector(
        "secret",
        _re(
            r"(?i)(?<![\w-])(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token"
            r"|client[_-]?secret)[\"']?(?:\s*[:=]\s*[\"']?|\s+(?:is|was)\s+[\"']?|\s+[\"'])"
            r"(?P<v>[^\s\"',;]{6,})"
        ),
        _assigned,
        requires=(  # key word ("client_secret" holds "secret") + an assignment's separator
            ci("passw(?:or)?d|pwd|secret|api(?:_|-)?key|access(?:_|-)?token|auth(?:_|-)?token")
            + rf"[\"']?(?:{SPACE}*[:=]|{SPACE}+(?:{ci('is|was')}){SPACE}|{SPACE}+[\"'])",
        ),
    ),
    Detector(
        "secret",
        _re(r"(?:密码|口令|密钥)\s*[:：是为]\s*(?P<v>[^\s，。,;]{4,})"),
        _assigned,
        requires=(exact("密码", "口令", "密钥"),),
    ),
)
DETECTOR = AnyOf("secret", PARTS)
