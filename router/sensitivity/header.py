"""The caller's own label: `X-Data-Classification: confidential` always raises sensitivity.

`public` lowers nothing (detectors and the model still run) unless the config trusts the
caller named by the caller header; then the request is public without classification.
Header names come from the config; the request headers here are lower-cased.
"""

from __future__ import annotations

from typing import Literal

from router.config import ClassifierConfig

HeaderVerdict = Literal["confidential", "trusted_public"] | None


def header_verdict(headers: dict[str, str], config: ClassifierConfig) -> HeaderVerdict:
    value = headers.get(config.header.lower(), "").strip().lower()
    if value in ("confidential", "restricted", "secret", "internal"):
        return "confidential"
    if value == "public" and headers.get(config.caller_header.lower()) in config.trusted_callers:
        return "trusted_public"
    return None
