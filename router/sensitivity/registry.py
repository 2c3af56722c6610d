"""Which detectors exist, in the order they run (cheap, precise ones first).

Adding a detector = one module under detectors/ exporting `DETECTOR`, its label in
`router.config.DETECTORS` (where the config checks labels), and its examples in
tests/test_router_detectors.py.
"""

from __future__ import annotations

from importlib import import_module
from typing import Protocol

from router.config import DETECTORS as MODULES


class Recognizer(Protocol):
    label: str

    def found(self, text: str) -> bool: ...


def all_detectors() -> dict[str, Recognizer]:
    out: dict[str, Recognizer] = {}
    for name in MODULES:
        detector = import_module(f"router.sensitivity.detectors.{name}").DETECTOR
        out[detector.label] = detector
    return out


def select(labels: list[str] | None) -> list[Recognizer]:
    """The configured detectors (all when `labels` is None); unknown labels are an error."""
    known = all_detectors()
    if labels is None:
        return list(known.values())
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise ValueError(f"unknown detector(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[label] for label in labels]
