"""The router's configuration schema (router.yaml), shared by the sidecar, the CLI and the build.

Strict: an unknown key is an error, so a typo never silently turns a safety knob off.
Loaded through `router.schema_io.load_model`, so every bad file reads as one line
`router.yaml: field.path: what is wrong` and the CLI exits 2. Relative paths (the model,
the tokenizer) are resolved against the config file's folder.

A leaf: every section lives here on one strict base, so any module may import its
section without importing the module that acts on it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import re2
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router.schema_io import load_model

SAGEMAKER_MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit
UPSTREAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SAGEMAKER_ENDPOINT = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
Tier = Literal["high", "normal", "low"]
TIERS: tuple[Tier, ...] = ("high", "normal", "low")  # highest priority first
# Detector labels, in the order they run (cheap, precise ones first); each is a module
# under router/sensitivity/detectors/ (router/sensitivity/registry.py loads them).
DETECTORS = (
    "marker", "secret", "card", "iban", "ssn", "cn_id",
    "bank_account", "passport", "health", "email", "phone",
)  # fmt: skip


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

    Defaults suit a 2-core sidecar (docs/decisions/003-classifier-threads.md): 2
    `concurrent_runs` of `threads` 1 intra-op thread each, i.e. two single-threaded batches,
    and a run that starts with none beside it on a second InferenceSession of `solo_threads` 2.
    `max_batch` 8 costs the same CPU per text as 32 with shorter runs to queue behind.
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
    concurrent_runs: int = Field(
        2, gt=0, le=64, description="runs in flight at once (one InferenceSession)",
        validation_alias=AliasChoices("concurrent_runs", "workers"),  # its former name
    )  # fmt: skip
    solo_threads: int = Field(
        2,
        gt=0,
        le=64,
        description="intra-op threads of a run with none beside it (a 2nd InferenceSession)",
    )
    cache_entries: int = Field(
        65_536,
        ge=0,
        description="window scores kept per router process (LRU; 0: none), so a resent chat "
        "history is not scored again; ~170 bytes each",
    )

    @field_validator("path", "tokenizer")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)


class CallerToken(Strict):
    """Where a trusted caller's secret is: a file (a mounted Kubernetes Secret; relative to
    this config) or an environment variable. Read once at start."""

    file: Path | None = None
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _one_source(self) -> CallerToken:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file, env")
        return self


# --- The organisation's own secrets (classifier.sensitivity) --------------------------------
ENTRY_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Entry names go into the decision's reasons (`term:codenames`), logs and headers: name
an entry after what it holds, never after a value in it."""
VALIDATORS = (
    "luhn", "mod97", "iso7064_mod11_2", "iso7064_mod11_10", "iso7064_mod37_2",
    "iso7064_mod37_36", "verhoeff", "damm",
)  # fmt: skip
"""Check-digit schemes a pattern may name (python-stdnum's; `mod97` = ISO 7064 MOD 97-10
over the value as written, letters counting 10-35)."""
MAX_TERM_CHARS = 200  # longer "terms" are documents, and the long-text overlap must cover one
DOMAIN_LABEL = re2.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def re2_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern` (one line), or None: user patterns run in RE2 only, so no
    configured regex can take more than linear time on a request."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


class TermList(Strict):
    """Words and phrases (code names, unreleased products), matched case-insensitively on the
    normalised text, whole words where the script has them (router/sensitivity/policy/)."""

    name: str = Field(pattern=ENTRY_NAME)
    words: list[str] = Field(default_factory=list)
    file: Path | None = Field(
        None, description="more words, one a line ('#' starts a comment), relative to this "
        "config; read at load (a reload reads it again)",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _read_file(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or data.get("file") is None:
            return data
        path = _resolve(Path(str(data["file"])), info)
        assert path is not None
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{data.get('name')}: file {path}: {reason}") from None
        words = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return {**data, "file": path, "words": [*(data.get("words") or []), *words]}

    @model_validator(mode="after")
    def _check(self) -> TermList:
        if not self.words:
            raise ValueError(f"{self.name}: no words")
        for n, word in enumerate(self.words, 1):  # by position: a word may be a secret
            if not word.strip() or len(word) > MAX_TERM_CHARS or "\n" in word:
                raise ValueError(
                    f"{self.name}: word {n}: empty, multi-line or over {MAX_TERM_CHARS} characters"
                )
        return self


class PatternRule(Strict):
    """A named regex (RE2 syntax, read on the normalised text) and what its value must pass:
    a check digit, a length, a prefix. The value is the group named `v`, else the match."""

    name: str = Field(pattern=ENTRY_NAME)
    regex: str = Field(min_length=1)
    validator: Literal[VALIDATORS] | None = Field(  # type: ignore[valid-type]
        None, description=f"check-digit scheme of the value: {', '.join(VALIDATORS)}"
    )
    lengths: list[int] = Field(
        default_factory=list, description="allowed counts of the value's letters and digits"
    )
    prefixes: list[str] = Field(
        default_factory=list, description="the value's letters and digits start with one of these"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_validator(cls, data: Any) -> Any:
        value = data.get("validator") if isinstance(data, dict) else None
        if value is not None and value not in VALIDATORS:
            raise ValueError(
                f"{data.get('name')}: unknown validator {value!r} (known: {', '.join(VALIDATORS)})"
            )
        return data

    @model_validator(mode="after")
    def _compiles(self) -> PatternRule:
        problem = re2_problem(self.regex)
        if problem is not None:
            raise ValueError(f"{self.name}: regex does not compile in RE2: {problem}")
        if any(n <= 0 for n in self.lengths):
            raise ValueError(f"{self.name}: lengths must be positive")
        return self


class HostRule(Strict):
    """Internal hosts, found in URLs, e-mail addresses and bare host names: `domains`
    (`corp.example.com`: it and every subdomain; `*.corp.example.com`: subdomains only)
    and IP networks in CIDR notation (IPv4 and IPv6)."""

    name: str = Field(pattern=ENTRY_NAME)
    domains: list[str] = Field(default_factory=list)
    cidrs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> HostRule:
        if not self.domains and not self.cidrs:
            raise ValueError(f"{self.name}: give domains, cidrs or both")
        for domain in self.domains:
            if domain_problem(domain):
                raise ValueError(f"{self.name}: domain {domain!r}: {domain_problem(domain)}")
        for cidr in self.cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"{self.name}: cidr {cidr!r}: {exc}") from None
        return self


def domain_problem(domain: str) -> str | None:
    """Why `domain` is not a host name of two labels or more (a leading `*.` allowed)."""
    try:
        ascii_name = domain.lower().removeprefix("*.").encode("idna").decode("ascii")
    except UnicodeError:
        return "not a valid internationalised domain name"
    labels = ascii_name.split(".")
    if len(labels) < 2:
        return "needs two labels or more (a bare word would match prose)"
    if not all(DOMAIN_LABEL.match(label) for label in labels):
        return "labels are letters, digits and inner hyphens"
    return None


class Topic(Strict):
    """A subject matched by meaning: the model's pooled embedding of a window against the
    embeddings of these examples (router/sensitivity/policy/topics.py)."""

    name: str = Field(pattern=ENTRY_NAME)
    description: str = ""
    examples: list[str] = Field(default_factory=list)
    threshold: float | None = Field(
        None, gt=0, lt=1, description="cosine similarity at or above → confidential; in a "
        "recipe, leave it out and the build chooses it on the eval split's public rows "
        "(pipeline/deploy/topics.py); router.yaml needs one",
    )  # fmt: skip

    @model_validator(mode="after")
    def _not_empty(self) -> Topic:
        if not any(example.strip() for example in self.examples):
            raise ValueError(f"{self.name}: a topic needs examples")
        return self


class SensitivityPolicy(Strict):
    """What this organisation holds confidential beyond the built-in detectors. A hit of
    any entry makes the request confidential; its reason names the entry (`term:NAME`,
    `pattern:NAME`, `host:NAME`, `topic:NAME`), never the text. `allow`: published values
    (a support number, documented test cards) that no rule flags; the header rule and the
    model still apply."""

    terms: list[TermList] = Field(default_factory=list)
    patterns: list[PatternRule] = Field(default_factory=list)
    hosts: list[HostRule] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> SensitivityPolicy:
        for kind in ("terms", "patterns", "hosts", "topics"):
            names = [entry.name for entry in getattr(self, kind)]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind}: names must be unique: {', '.join(repeated)}")
        for value in self.allow:
            if not any(ch.isalnum() for ch in value):
                raise ValueError(f"allow: {value[:40]!r}: no letters or digits")
        return self


class ClassifierConfig(Strict):
    """Header rule + validated detectors + the model; confidential if any of them says so.

    A trusted caller's `public` skips classification only when it proves its name with its
    secret (`caller_token_header: Bearer <token>`): a name alone is a header anyone sends.
    """

    detectors: list[str] | None = Field(
        None, description="detector labels to run (default: all registered)"
    )
    header: str = "X-Data-Classification"
    caller_header: str = Field("X-Caller", description="names the caller for `trusted_callers`")
    trusted_callers: list[str] = Field(
        default_factory=list, description="callers whose `public` header skips classification "
        "when they send their token (caller_tokens)",
    )  # fmt: skip
    caller_tokens: dict[str, CallerToken] = Field(
        default_factory=dict, description="each trusted caller's secret (router/callers.py)"
    )
    caller_token_header: str = Field(
        "X-Caller-Token", description="carries `Bearer <token>` (never forwarded upstream)"
    )
    model: ModelConfig | None = None
    sensitivity: SensitivityPolicy = Field(
        default_factory=SensitivityPolicy, description="the organisation's own secrets"
    )

    @model_validator(mode="after")
    def _topics_need_the_model(self) -> ClassifierConfig:
        if self.sensitivity.topics and (self.model is None or not self.model.enabled):
            raise ValueError("sensitivity.topics: matched by the model, which is not configured")
        for topic in self.sensitivity.topics:
            if topic.threshold is None:
                raise ValueError(
                    f"sensitivity.topics: {topic.name}: no threshold (a build chooses one on "
                    "its eval split; set one to use the topic here)"
                )
        return self

    @model_validator(mode="after")
    def _trust_needs_tokens(self) -> ClassifierConfig:
        missing = [name for name in self.trusted_callers if name not in self.caller_tokens]
        if missing:
            raise ValueError(
                f"trusted_callers without a token in caller_tokens: {', '.join(missing)} "
                "(a caller's name alone can be spoofed)"
            )
        return self

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            unknown = sorted(set(labels) - set(DETECTORS))
            if unknown:
                raise ValueError(
                    f"unknown detector(s): {', '.join(unknown)} (known: {', '.join(DETECTORS)})"
                )
        return labels


class OnPremUpstream(Strict):
    name: str = Field(pattern=UPSTREAM_NAME)
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
    connect_timeout_s: float = Field(
        1.0, gt=0, description="TCP connect (Envoy's connect_timeout is 5 s, nginx's "
        "proxy_connect_timeout 60 s: on-prem servers are near, a second is plenty)",
    )  # fmt: skip
    max_connections: int = Field(256, gt=0)

    @field_validator("upstreams")
    @classmethod
    def _unique_names(cls, ups: list[OnPremUpstream]) -> list[OnPremUpstream]:
        names = [u.name for u in ups]
        if len(set(names)) != len(names):
            raise ValueError("upstream names must be unique")
        return ups


class SageMakerConfig(Strict):
    endpoint_name: str = Field(pattern=SAGEMAKER_ENDPOINT, max_length=63)
    region: str = "us-east-1"
    target_variant: str | None = None
    inference_component: str | None = None
    endpoint_url: HttpUrl | None = Field(None, description="override (tests, VPC endpoints)")
    max_concurrency: int = Field(64, gt=0, le=1024, description="threads = boto3 pool size")
    connect_timeout_s: float = Field(2.0, gt=0, description="botocore's connect timeout")
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
    """Fallback pools (a smaller model), one per sensitivity class.

    Both speak the OpenAI protocol. `confidential` must be on-prem servers: confidential
    requests never leave for the cloud, not even as a fallback.
    """

    confidential: OnPremConfig | None = Field(None, description="on-prem fallback servers")
    public: OnPremConfig | None = Field(None, description="fallback servers for public requests")


class AdmissionConfig(Strict):
    """Config section `admission` (priority tiers and their queues)."""

    default_tier: Tier = Field("normal", description="Tier of a request that names none")
    priority_header: str = Field("x-priority", description="Header carrying high|normal|low")
    caller_header: str = Field("x-caller", description="Header naming the caller (for `callers`)")
    callers: dict[str, Tier] = Field(
        default_factory=dict,
        description="Caller → tier; a mapped caller gets this tier whatever X-Priority says",
    )
    reserved: dict[Tier, float] = Field(
        default_factory=lambda: {"high": 0.4, "normal": 0.1, "low": 0.0},
        description="Fraction of each pool's slots reserved for a tier; lower tiers never "
        "take them (high 0.4 = 40% of the slots are high-only)",
    )
    queue_size: dict[Tier, int] = Field(
        default_factory=lambda: {"high": 64, "normal": 32, "low": 16},
        description="Bounded queue length per tier; a full queue sheds at once",
    )
    max_queue_wait_s: dict[Tier, float] = Field(
        default_factory=lambda: {"high": 10.0, "normal": 5.0, "low": 2.0},
        description="Longest wait in the queue (also bounded by the request deadline)",
    )
    deadline_header: str = Field(
        "x-deadline-ms", description="Caller's deadline in ms; can only shorten limits.deadline_s"
    )
    pool_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Concurrency limit per pool (onprem, sagemaker, fallback-public, "
        "fallback-confidential); default: per_upstream_limit × upstreams, or SageMaker's "
        "max_concurrency",
    )
    per_upstream_limit: int = Field(16, ge=1, description="Slots per on-prem upstream")
    spill_wait_s: float = Field(
        0.05, ge=0, description="Wait for a slot on a route before spilling to the next "
        "allowed route (overflow, fallback); the last route queues instead",
    )  # fmt: skip
    drain_window_s: float = Field(10.0, gt=0, description="Window of the observed drain rate")
    retry_after_min_s: int = Field(1, ge=1, description="Smallest Retry-After sent")
    retry_after_max_s: int = Field(30, ge=1, description="Largest Retry-After sent")

    @model_validator(mode="after")
    def _check(self) -> AdmissionConfig:
        if sum(self.reserved.values()) >= 1.0:
            raise ValueError("reserved fractions must add up to less than 1")
        if any(v < 0 for v in self.reserved.values()):
            raise ValueError("reserved fractions must be >= 0")
        if self.retry_after_min_s > self.retry_after_max_s:
            raise ValueError("retry_after_min_s must be <= retry_after_max_s")
        return self


class RetryConfig(Strict):
    """Config section `retry`."""

    max_attempts: int = Field(3, ge=1, description="Attempts per request, the first included")
    base_backoff_s: float = Field(0.025, gt=0, description="Backoff before the first retry")
    max_backoff_s: float = Field(1.0, gt=0, description="Cap of the exponential backoff")
    budget_ratio: float = Field(
        0.2, ge=0, le=1, description="Retries allowed per request in the window (0.2 = 20%)"
    )
    budget_min_retries: int = Field(
        3, ge=0, description="Floor: retries always allowed per window, however few requests"
    )
    budget_window_s: float = Field(10.0, gt=0, description="Sliding window of the budget")
    budget_high_reserve: float = Field(
        0.3, ge=0, lt=1, description="Share of the budget only high-tier retries may use "
        "(like admission's reserved capacity: low/normal never spend the last 30%)",
    )  # fmt: skip
    max_retry_after_s: float = Field(
        5.0, ge=0, description="Longest upstream Retry-After honoured by waiting (capped)"
    )


class BreakerConfig(Strict):
    """Config section `breaker` (applies to every upstream)."""

    consecutive_failures: int = Field(5, ge=1, description="Failures in a row that eject")
    error_rate: float = Field(0.5, gt=0, le=1, description="Error share in the window that ejects")
    min_requests: int = Field(
        20, ge=1, description="Requests in the window before error_rate counts"
    )
    window_s: float = Field(10.0, gt=0, description="Window of the error rate")
    base_ejection_s: float = Field(5.0, gt=0, description="First ejection; n-th lasts n × this")
    max_ejection_s: float = Field(120.0, gt=0, description="Longest ejection")
    half_open_probes: int = Field(1, ge=1, description="Concurrent probes while half-open")
    forget_after_s: float = Field(
        300.0, gt=0, description="Healthy time after which the ejection count resets"
    )


class CacheConfig(Strict):
    """Config section `cache`."""

    enabled: bool = Field(False, description="Use the Redis cache at all")
    url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL")
    ttl_s: int = Field(300, ge=1, description="Time to live of a cached answer")
    header: str = Field(
        "x-edgepack-cache",
        description="Request header: 'allow' caches a non-zero-temperature public request, "
        "'bypass' skips the cache",
    )
    key_prefix: str = Field("edgepack:cache:v1:", description="Redis key prefix")
    timeout_s: float = Field(0.05, gt=0, description="Redis connect/command timeout")
    off_after_error_s: float = Field(1.0, ge=0, description="Cache off this long after an error")
    max_entry_bytes: int = Field(1_000_000, ge=1, description="Larger answers are not stored")


class DrainConfig(Strict):
    """Config section `drain`."""

    grace_period_s: float = Field(
        25.0, ge=0, description="Longest wait for in-flight requests after SIGTERM "
        "(keep it below the pod's terminationGracePeriodSeconds)",
    )  # fmt: skip
    linger_s: float = Field(
        1.0, ge=0, description="Keep answering 503 at least this long after SIGTERM, so load "
        "balancers see the router unready before it stops listening",
    )  # fmt: skip
    retry_after_s: int = Field(
        2, ge=1, description="Retry-After on requests refused while draining"
    )


class TimeoutsConfig(Strict):
    """Config section `timeouts`: every read from the client and every wait on an upstream
    has one (the connect timeouts are the pools': onprem.connect_timeout_s,
    sagemaker.connect_timeout_s). References: nginx's client_header_timeout and
    client_body_timeout (60 s, the body's between two reads), proxy_read_timeout (60 s
    between two reads, the head included); Envoy's request_headers_timeout (off by default,
    10 s in its edge guide), request_timeout (off), stream_idle_timeout (5 min). A sidecar's
    clients sit on the pod's loopback: a head or body that slow is stuck or hostile, so the
    client side is shorter than nginx's. The client timeouts are fixed at start (a reload
    that changes one is refused); the upstream ones take effect with the reload."""

    client_header_s: float = Field(
        10.0, gt=0, description="request line + headers, from their first byte; else 408"
    )
    client_body_idle_s: float = Field(
        10.0, gt=0, description="longest silence while the body is read; else 408"
    )
    client_body_s: float = Field(
        30.0, gt=0, description="the whole body, from the end of the head; else 408"
    )
    upstream_first_byte_s: float = Field(
        60.0, gt=0, description="request sent → response head (a non-streamed answer is "
        "generated whole before its head: keep it above the longest generation); else 504",
    )  # fmt: skip
    upstream_stream_idle_s: float = Field(
        30.0, gt=0, description="longest silence between two chunks of an answer; a "
        "stream then ends as broken (never as a clean end)",
    )  # fmt: skip


class ResponsesConfig(Strict):
    """Config section `responses`: caps on what an upstream may answer; past one the
    caller gets 502 (or a broken stream) and one log line says which cap. References:
    Envoy's max_response_headers_kb (60 KiB), nginx's proxy_buffer_size (the head must fit
    one 4–8 KiB buffer); SageMaker answers at most 6 MB."""

    max_head_bytes: int = Field(64 * 1024, gt=0, description="status line + headers")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, gt=0, description="a whole (not streamed) answer, held in memory"
    )
    max_chunk_bytes: int = Field(
        1024 * 1024, gt=0, description="one chunk (on-prem) or PayloadPart (SageMaker) of a stream"
    )
    max_stream_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="a whole streamed answer (passed on, not held)"
    )


class RouterConfig(Strict):
    listen: ListenConfig = ListenConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    onprem: OnPremConfig
    sagemaker: SageMakerConfig | None = None
    policy: PolicyConfig = PolicyConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()
    admission: AdmissionConfig = AdmissionConfig()  # router/admission.py: tiers, queues
    retry: RetryConfig = RetryConfig()  # router/retry.py: backoff, retry budget
    breaker: BreakerConfig = BreakerConfig()  # router/breaker.py: outlier ejection
    fallback: FallbackConfig = FallbackConfig()  # router/upstreams/fallback.py
    cache: CacheConfig = CacheConfig()  # router/cache.py: Redis, public + deterministic only
    drain: DrainConfig = DrainConfig()  # router/drain.py, router/server.py: SIGTERM grace
    timeouts: TimeoutsConfig = TimeoutsConfig()  # router/http_protocol.py, upstreams/
    responses: ResponsesConfig = ResponsesConfig()  # upstreams/: caps on upstream answers


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
