"""router.yaml from the recipe's deploy section, checked by the router's own loader.

The file lives in the bundle's deploy/ folder and names the classifier relative to
itself (../onnx/model.int8.onnx), which holds both in the bundle and in the image
(/app/deploy/router.yaml beside /app/onnx/). Whatever `deploy.router` holds is merged
on top, so any router setting can be tuned from the recipe and is still validated.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.deploy.spec import DeployConfig, PoolSpec
from pipeline.errors import StageFailed
from router.config import load_config
from router.errors import UserError

MODEL = "../onnx/model.int8.onnx"
TOKENIZER = "../onnx/tokenizer.json"


def _pool(pool: PoolSpec) -> dict:
    return {"upstreams": [u.model_dump() for u in pool.upstreams]}


def _sagemaker(deploy: DeployConfig) -> dict:
    sm = deploy.sagemaker
    out = {"endpoint_name": sm.endpoint, "region": sm.region}
    if sm.variant:
        out["target_variant"] = sm.variant
    if sm.inference_component:
        out["inference_component"] = sm.inference_component
    return out


def _resilience(deploy: DeployConfig) -> dict:
    """The resilience sections the recipe drives: admission tiers, drain, fallback, cache.

    Every other router section keeps the router's defaults unless `deploy.router` sets it.
    """
    sections: dict = {
        "admission": {
            "reserved": {t.name: t.reserved for t in deploy.tiers},
            "queue_size": {t.name: t.queue for t in deploy.tiers},
        },
        "drain": {"grace_period_s": deploy.drain_grace_s},
    }
    fallback = {
        cls: _pool(pool)
        for cls, pool in (("confidential", deploy.fallback.confidential),
                          ("public", deploy.fallback.public))
        if pool is not None
    }  # fmt: skip
    if fallback:
        sections["fallback"] = fallback
    if deploy.cache is not None:
        sections["cache"] = {"enabled": True, "url": deploy.cache.url, "ttl_s": deploy.cache.ttl_s}
    return sections


def _sensitivity(deploy: DeployConfig, topic_thresholds: dict[str, float]) -> dict:
    """`classifier.sensitivity` when the recipe sets one, its term files inlined (the
    bundle does not carry them) and each topic's threshold the one the build chose."""
    if deploy.sensitivity == type(deploy.sensitivity)():
        return {}
    policy = deploy.sensitivity.model_dump(mode="json", exclude_defaults=True)
    for terms in policy.get("terms", []):
        terms.pop("file", None)
    for topic in policy.get("topics", []):
        if topic["name"] in topic_thresholds:
            topic["threshold"] = topic_thresholds[topic["name"]]
    return {"sensitivity": policy}


def deep_merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, recursing into mappings (lists and scalars are replaced)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def router_config(
    deploy: DeployConfig,
    *,
    positive_label: str,
    max_length: int,
    threshold: float = 0.5,
    topic_thresholds: dict[str, float] | None = None,
) -> dict:
    """The router.yaml mapping for a bundle: on the pod's loopback (only the app beside it
    reaches it), on all interfaces only behind the Service the recipe asked for.

    `threshold` is the model's operating point; the recipe's `deploy.threshold` overrides it.
    `topic_thresholds`: the build's choice per topic (deploy/topics.py).
    """
    config = {
        "listen": {
            "host": "0.0.0.0" if deploy.service else "127.0.0.1",
            "port": deploy.listen_port,
        },
        "classifier": {
            "model": {
                "path": MODEL,
                "tokenizer": TOKENIZER,
                "positive_label": positive_label,
                "threshold": threshold if deploy.threshold is None else deploy.threshold,
                "max_length": max_length,
            },
            **_sensitivity(deploy, topic_thresholds or {}),
        },
        "onprem": _pool(deploy.onprem),
        "sagemaker": _sagemaker(deploy),
        "policy": {"public_overflow_to_onprem": deploy.public_overflow_to_onprem},
        **_resilience(deploy),
    }
    return deep_merge(config, deploy.router)


def render(config: dict, header: str) -> str:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(config, sort_keys=False)


def validate(path: Path) -> object:
    """Load `path` with the router's own loader; a mismatch fails the build (schema drift)."""
    try:
        config = load_config(path)
    except UserError as exc:
        raise StageFailed("router", f"generated router.yaml is invalid: {exc}") from None
    model = config.classifier.model
    if model is None:
        raise StageFailed("router", "generated router.yaml has no classifier model")
    for needed in (model.path, model.tokenizer or model.path.parent / "tokenizer.json"):
        if not Path(needed).is_file():
            raise StageFailed("router", f"router.yaml names {needed}, which the bundle lacks")
    return config
