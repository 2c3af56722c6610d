"""Policy: which routes a request may take, in order. The one place that enforces

    confidential → on-prem only, never the cloud;
    public       → SageMaker first, on-prem as overflow when the config allows it.

Everything downstream (admission, retries, fallback) may only choose among these routes,
so no later step can send a confidential request to SageMaker.
"""

from __future__ import annotations

from router.config import PolicyConfig
from router.sensitivity.decision import Decision

ONPREM = "onprem"
SAGEMAKER = "sagemaker"
FALLBACK = "fallback"  # per-class fallback pools: confidential → on-prem fallback only
CLOUD_ROUTES = frozenset({SAGEMAKER})


def routes_for(
    decision: Decision, policy: PolicyConfig, have_sagemaker: bool, have_fallback: bool = False
) -> tuple[str, ...]:
    """Ordered routes allowed for `decision` (the first usable one is tried first).
    The fallback route comes last; it keeps the class (router/upstreams/fallback.py)."""
    return _primary_routes(decision, policy, have_sagemaker) + (
        (FALLBACK,) if have_fallback else ()
    )


def _primary_routes(
    decision: Decision, policy: PolicyConfig, have_sagemaker: bool
) -> tuple[str, ...]:
    if decision.confidential:
        return (ONPREM,)
    if not have_sagemaker:
        return (ONPREM,)
    if policy.public_overflow_to_onprem:
        return (SAGEMAKER, ONPREM)
    return (SAGEMAKER,)


def allowed(decision: Decision, route: str) -> bool:
    """Last-line check before a call: confidential never goes to a cloud route."""
    return not (decision.confidential and route in CLOUD_ROUTES)
