"""The router's configuration schema (router.yaml), shared by the sidecar, the CLI and the build.

Strict: an unknown key is an error, so a typo never silently turns a safety knob off.
Loaded through `pipeline.schema_io.load_model`, so every bad file reads as one line
`router.yaml: field.path: what is wrong` and the CLI exits 2. Relative paths (the model,
the tokenizer) are resolved against the config file's folder.

Resilience sections (admission tiers, retry budget, breaker, fallback, cache, drain) belong
to issue 7's modules; each adds its own section here as one field of `RouterConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, field_validator

from pipeline.schema_io import load_model
from router.admission import AdmissionConfig
from router.breaker import BreakerConfig
from router.cache import CacheConfig
from router.drain import DrainConfig
from router.retry import RetryConfig

SAGEMAKER_MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(
        1, ge=1, le=64, description="router processes on this socket (router/workers.py): "
        "more cut the latency of bursts where cores are spare; admission slots, queues and "
        "connections are split between them; each loads its own classifier; not reloaded",
    )  # fmt: skip


class ModelConfig(Strict):
    """The ONNX classifier from a build's dist/<recipe>-<target>/onnx/.

    Defaults suit a 2-core sidecar (figures: batching.py, benchmarks/router/README.md):
    `workers` 2 runs of `threads` 1 intra-op thread each, i.e. two single-threaded batches
    in flight (1.7–1.9× the req/s of one at a time; one run on 2 threads did less), and a
    run that starts with none beside it on a second session of `solo_threads` 2 (a lone
    prompt answered ~1.3 ms sooner, +33 MB). `max_batch` 8 costs the same CPU per text as
    32 with shorter runs to queue behind. More cores: likely workers ≈ cores (not measured).
    """

    enabled: bool = True
    path: Path = Field(description="model.int8.onnx; tokenizer.json + config.json beside it")
    tokenizer: Path | None = Field(None, description="default: tokenizer.json beside the model")
    positive_label: str = "confidential"
    threshold: float = Field(0.5, gt=0, lt=1, description="P(positive) at or above → confidential")
    max_length: int = Field(128, gt=0, le=512)
    max_batch: int = Field(8, gt=0, le=256, description="texts per ONNX Runtime run")
    max_wait_ms: float = Field(2.0, ge=0, le=100, description="micro-batch collection window")
    timeout_ms: float = Field(
        500, gt=0, description="per max_batch windows: no answer by then → confidential"
    )
    threads: int = Field(1, gt=0, le=64, description="ONNX Runtime intra-op threads per run")
    workers: int = Field(2, gt=0, le=64, description="runs in flight at once (one session)")
    solo_threads: int = Field(
        2, gt=0, le=64, description="intra-op threads of a run with none beside it (a 2nd session)"
    )

    @field_validator("path", "tokenizer")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)


class ClassifierConfig(Strict):
    """Header rule + validated detectors + the model; confidential if any of them says so."""

    detectors: list[str] | None = Field(
        None, description="detector labels to run (default: all registered)"
    )
    header: str = "X-Data-Classification"
    caller_header: str = Field("X-Caller", description="names the caller for `trusted_callers`")
    trusted_callers: list[str] = Field(
        default_factory=list, description="callers whose `public` header skips classification"
    )
    model: ModelConfig | None = None

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            from router.sensitivity.registry import select

            select(labels)  # ValueError names the unknown ones
        return labels


class OnPremUpstream(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: HttpUrl
    weight: float = Field(1.0, gt=0)


class HealthCheckConfig(Strict):
    """Active checks: out after `unhealthy_after` failures in a row, back after `healthy_after`."""

    path: str = "/health"
    interval_s: float = Field(2.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    unhealthy_after: int = Field(2, ge=1)
    healthy_after: int = Field(2, ge=1)
    eject_on_failure: bool = Field(
        False, description="a failed request takes it out at once (off: one busy answer "
        "must not empty the pool; the breaker ejects after breaker.consecutive_failures)",
    )  # fmt: skip


class OnPremConfig(Strict):
    upstreams: list[OnPremUpstream] = Field(min_length=1)
    health: HealthCheckConfig = HealthCheckConfig()
    connect_timeout_s: float = Field(1.0, gt=0)
    max_connections: int = Field(256, gt=0)

    @field_validator("upstreams")
    @classmethod
    def _unique_names(cls, ups: list[OnPremUpstream]) -> list[OnPremUpstream]:
        names = [u.name for u in ups]
        if len(set(names)) != len(names):
            raise ValueError("upstream names must be unique")
        return ups


class SageMakerConfig(Strict):
    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", max_length=63)
    region: str = "us-east-1"
    target_variant: str | None = None
    inference_component: str | None = None
    endpoint_url: HttpUrl | None = Field(None, description="override (tests, VPC endpoints)")
    max_concurrency: int = Field(64, gt=0, le=1024, description="threads = boto3 pool size")
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)


class PolicyConfig(Strict):
    public_overflow_to_onprem: bool = Field(
        True, description="public requests may go on-prem when SageMaker throttles or is down"
    )


class LimitsConfig(Strict):
    max_body_bytes: int = Field(SAGEMAKER_MAX_BODY, gt=0, le=SAGEMAKER_MAX_BODY)
    deadline_s: float = Field(120.0, gt=0, description="per-request deadline, upstream included")


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class FallbackConfig(Strict):
    """Fallback pools (a smaller model), one per sensitivity class (issue 7).

    Both speak the OpenAI protocol. `confidential` must be on-prem servers: confidential
    requests never leave for the cloud, not even as a fallback.
    """

    confidential: OnPremConfig | None = Field(None, description="on-prem fallback servers")
    public: OnPremConfig | None = Field(None, description="fallback servers for public requests")


class RouterConfig(Strict):
    listen: ListenConfig = ListenConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    onprem: OnPremConfig
    sagemaker: SageMakerConfig | None = None
    policy: PolicyConfig = PolicyConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()
    # Resilience (issue 7): each section's defaults are documented in its module.
    admission: AdmissionConfig = AdmissionConfig()  # router/admission.py: tiers, queues
    retry: RetryConfig = RetryConfig()  # router/retry.py: backoff, retry budget
    breaker: BreakerConfig = BreakerConfig()  # router/breaker.py: outlier ejection
    fallback: FallbackConfig = FallbackConfig()  # router/fallback.py
    cache: CacheConfig = CacheConfig()  # router/cache.py: Redis, public + deterministic only
    drain: DrainConfig = DrainConfig()  # router/drain.py: SIGTERM grace, SIGHUP reload


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("path")
    if value is None or value.is_absolute() or base is None:
        return value
    return Path(base).parent / value


def load_config(path: Path | str) -> RouterConfig:
    """Read router.yaml; a bad file raises UserError('file: field: msg', code 2)."""
    return load_model(RouterConfig, Path(path))


def config_from_dict(data: dict, where: Path | str = Path("<config>")) -> RouterConfig:
    """Validate an in-memory config (tests, the demo) with the same one-line errors."""
    return load_model(RouterConfig, Path(where), data=data)
