"""The caller's own label: `X-Data-Classification: confidential` always raises sensitivity.

`public` lowers nothing (detectors and the model still run) unless the caller proves it is
a trusted one (router/callers.py: its name and its token); then the request is public
without classification.
Header names come from the config; the request headers here are lower-cased.
"""

from __future__ import annotations

from typing import Literal

from router.callers import CallerTrust
from router.config import ClassifierConfig

HeaderVerdict = Literal["confidential", "trusted_public"] | None


def header_verdict(
    headers: dict[str, str], config: ClassifierConfig, callers: CallerTrust
) -> HeaderVerdict:
    value = headers.get(config.header.lower(), "").strip().lower()
    if value in ("confidential", "restricted", "secret", "internal"):
        return "confidential"
    if value == "public" and callers.proven(headers):
        return "trusted_public"
    return None
