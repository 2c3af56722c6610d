"""The classification decision: what the router tells callers, logs and `/v1/classify` returns.

Reasons are labels (card, iban, ssn, cn_id, phone, email, bank_account, passport, health,
secret, marker, model, header, opaque, classifier_error), never the matched text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Sensitivity = Literal["confidential", "public"]


@dataclass(frozen=True)
class Decision:
    sensitivity: Sensitivity
    reasons: tuple[str, ...] = field(default_factory=tuple)
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
