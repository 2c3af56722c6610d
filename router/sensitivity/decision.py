"""The classification decision: what the router tells callers, logs and `/v1/classify` returns.

Reasons are labels (card, iban, ssn, cn_id, phone, email, bank_account, passport, health,
secret, marker, model, header, opaque, too_long, classifier_error) and the names of the
organisation's entries that fired (`term:NAME`, `pattern:NAME`, `host:NAME`,
`topic:NAME`), never the matched text.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Sensitivity = Literal["confidential", "public"]


class Decision(NamedTuple):
    """Immutable, and a named tuple rather than a frozen dataclass: one is made per request,
    and a frozen dataclass's __init__ sets each field through object.__setattr__ (6.2k
    instructions per request under callgrind, a named tuple 3.0k)."""

    sensitivity: Sensitivity
    reasons: tuple[str, ...] = ()
    classifier_ms: float = 0.0

    @property
    def confidential(self) -> bool:
        return self.sensitivity == "confidential"

    def as_json(self) -> dict:
        return {
            "sensitivity": self.sensitivity,
            "reasons": list(self.reasons),
            "classifier_ms": round(self.classifier_ms, 3),
        }
