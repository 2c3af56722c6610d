"""The recipe's `deploy:` section: where the router sidecar runs and what it routes to.

It states deployment intent (upstreams, SageMaker endpoint, tiers, sizes); the router
stage turns it into router.yaml (checked by the router's own schema), Kubernetes
manifests, a Dockerfile and monitoring files. It reuses the router's strict base,
patterns and tier names (router/config.py, a leaf), so the two schemas cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from router.config import SAGEMAKER_ENDPOINT, UPSTREAM_NAME, SensitivityPolicy, Tier
from router.config import Strict as DeployStrict

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
IMAGE_REF = r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$"
CPU = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY = r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
_MEMORY_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def cpu_cores(quantity: str) -> float:
    """Kubernetes CPU quantity ('500m', '2') in cores."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> float:
    """Kubernetes memory quantity ('512Mi', '1G') in bytes."""
    number, unit = re.fullmatch(r"([0-9]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * _MEMORY_UNITS[unit]


class Upstream(DeployStrict):
    """One OpenAI-protocol server (vLLM, TensorRT-LLM, Triton's OpenAI frontend)."""

    name: str = Field(pattern=UPSTREAM_NAME)
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    weight: float = Field(1.0, gt=0)


class PoolSpec(DeployStrict):
    upstreams: list[Upstream] = Field(min_length=1)

    @field_validator("upstreams")
    @classmethod
    def _unique(cls, ups: list[Upstream]) -> list[Upstream]:
        names = [u.name for u in ups]
        if len(set(names)) != len(names):
            raise ValueError("upstream names must be unique")
        return ups


class SageMakerTarget(DeployStrict):
    endpoint: str = Field(pattern=SAGEMAKER_ENDPOINT, max_length=63)
    region: str = Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
    variant: str | None = None
    inference_component: str | None = None
    role_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
        description="IAM role for the pod's service account (EKS IRSA annotation)",
    )


class FallbackPools(DeployStrict):
    """Smaller models for a saturated or broken pool; each keeps its sensitivity class."""

    confidential: PoolSpec | None = Field(None, description="on-prem too: never the cloud")
    public: PoolSpec | None = None


class TierSpec(DeployStrict):
    name: Tier
    reserved: float = Field(0.0, ge=0, lt=1, description="share of pool slots kept for this tier")
    queue: int = Field(64, ge=0, description="bounded queue length for this tier")


class Cache(DeployStrict):
    url: str = Field(pattern=r"^rediss?://\S+$")
    ttl_s: int = Field(300, gt=0)


class ResourceAmounts(DeployStrict):
    cpu: str = Field(pattern=CPU)
    memory: str = Field(pattern=MEMORY)


class Resources(DeployStrict):
    requests: ResourceAmounts = ResourceAmounts(cpu="250m", memory="384Mi")
    limits: ResourceAmounts = ResourceAmounts(cpu="2", memory="1Gi")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        if cpu_cores(self.requests.cpu) > cpu_cores(self.limits.cpu):
            raise ValueError("requests.cpu exceeds limits.cpu")
        if memory_bytes(self.requests.memory) > memory_bytes(self.limits.memory):
            raise ValueError("requests.memory exceeds limits.memory")
        return self


class Forecast(DeployStrict):
    """How the Prometheus recording rules forecast load (pipeline/deploy/forecast.py)."""

    horizon_min: int = Field(
        15, ge=1, le=120, description="minutes ahead: more than pod start-up + scaling delay"
    )
    window_min: int = Field(30, ge=5, le=360, description="history Holt-Winters smooths")
    trend_min: int = Field(
        5, ge=2, le=360, description="history the trend is fitted on and seasons averaged over"
    )
    smoothing: Literal["holt_winters", "double_exponential_smoothing", "none"] = Field(
        "holt_winters",
        description="Prometheus 2: holt_winters; Prometheus 3: double_exponential_smoothing "
        "(needs --enable-feature=promql-experimental-functions) or none",
    )
    smoothing_factor: float = Field(0.7, gt=0, lt=1)
    trend_factor: float = Field(0.3, gt=0, lt=1)
    seasons: list[Literal["1d", "7d"]] = Field(
        default_factory=lambda: ["1d"],
        description="periods whose last cycle's change over the horizon is added",
    )


class Autoscaling(DeployStrict):
    scaler: Literal["keda", "hpa"] = Field(
        "keda", description="keda: ScaledObject on the forecast; hpa: reactive, no KEDA needed"
    )
    min_replicas: int = Field(2, ge=1)
    max_replicas: int = Field(10, ge=1)
    cpu_utilization: int = Field(70, ge=1, le=100, description="target % of requested CPU")
    requests_per_pod: float = Field(
        200, gt=0, description="req/s one pod serves at its target load (benchmarks/router)"
    )
    in_flight_per_pod: float | None = Field(
        None, gt=0, description="in-flight requests one pod holds at its target load"
    )
    prometheus_url: str = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="where KEDA queries the forecast",
    )
    forecast: Forecast = Forecast()

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas exceeds max_replicas")
        return self


class App(DeployStrict):
    """The example main container the router sits beside (it calls 127.0.0.1)."""

    name: str = Field("app", pattern=DNS_LABEL)
    image: str = Field("ghcr.io/example/llm-app:1.0.0", pattern=IMAGE_REF)
    shutdown_s: int = Field(10, ge=0, le=600, description="the app's own shutdown time")
    resources: Resources = Resources(
        requests=ResourceAmounts(cpu="100m", memory="128Mi"),
        limits=ResourceAmounts(cpu="1", memory="512Mi"),
    )


class Alerts(DeployStrict):
    shed_ratio: float = Field(0.05, gt=0, lt=1, description="shed / requests over 5 min")
    p99_seconds: float = Field(10.0, gt=0, description="p99 latency per route")
    classifier_failures: int = Field(
        0, ge=0, description="fail-closed classifications tolerated per 10 min"
    )
    retry_budget_exhausted_per_s: float = Field(0.1, gt=0)


class DeployConfig(DeployStrict):
    image: str = Field(pattern=IMAGE_REF, description="router image, e.g. registry/name:tag")
    namespace: str = Field("default", pattern=DNS_LABEL)
    name: str = Field("edgepack-router", pattern=DNS_LABEL, description="workload name")
    replicas: int = Field(2, ge=1)
    listen_port: int = Field(8080, ge=1024, le=65535, description="non-root: no port < 1024")
    service: bool = Field(
        False, description="a cluster Service in front of the router (it then listens on "
        "0.0.0.0; Prometheus scrapes it through the Service); off: 127.0.0.1, only the app "
        "in its pod reaches it",
    )  # fmt: skip
    drain_grace_s: int = Field(20, ge=1, le=600, description="in-flight requests get this long")
    pre_stop_s: int = Field(5, ge=0, le=60, description="wait for endpoint removal first")
    onprem: PoolSpec
    sagemaker: SageMakerTarget
    public_overflow_to_onprem: bool = True
    fallback: FallbackPools = FallbackPools()
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [
            TierSpec(name="high", reserved=0.4, queue=64),
            TierSpec(name="normal", reserved=0.0, queue=64),
            TierSpec(name="low", reserved=0.0, queue=16),
        ]
    )
    cache: Cache | None = None
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="classifier P(positive) threshold; default: the build's operating point "
        "(chosen by finetune for eval.min_recall)",
    )
    sensitivity: SensitivityPolicy = Field(
        default_factory=SensitivityPolicy,
        description="the organisation's own secrets (terms, patterns, hosts, topics, allow), "
        "carried into router.yaml's classifier.sensitivity; term files are read from the "
        "recipe's folder and inlined",
    )
    resources: Resources = Resources()
    autoscaling: Autoscaling = Autoscaling()
    app: App = App()
    alerts: Alerts = Alerts()
    router: dict = Field(
        default_factory=dict,
        description="further router.yaml settings, merged in; checked by the router's schema",
    )

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        if sum(t.reserved for t in tiers) >= 1:
            raise ValueError("reserved shares must sum to less than 1")
        return tiers

    @model_validator(mode="after")
    def _replicas_in_range(self) -> DeployConfig:
        low, high = self.autoscaling.min_replicas, self.autoscaling.max_replicas
        if not low <= self.replicas <= high:
            raise ValueError(f"replicas must lie within autoscaling [{low}, {high}]")
        return self

    @model_validator(mode="after")
    def _one_drain_grace(self) -> DeployConfig:
        """The pod's grace counts `drain_grace_s` once: the router's whole drain, SIGTERM to
        exit; a grace period set in `router` would escape that count."""
        drain = self.router.get("drain")
        grace = drain.get("grace_period_s") if isinstance(drain, dict) else None
        if grace is not None and grace != self.drain_grace_s:
            raise ValueError(
                "router.drain.grace_period_s: set drain_grace_s instead (the pod's "
                "terminationGracePeriodSeconds is counted from it)"
            )
        return self

    @property
    def termination_grace_s(self) -> int:
        """Pod grace: the app stops, then the sidecar's preStop wait and its drain (one
        `drain_grace_s` from SIGTERM to exit, streams included), plus slack."""
        return self.app.shutdown_s + self.pre_stop_s + self.drain_grace_s + 5
