"""The `router` stage: everything needed to run the router sidecar, under deploy/.

From the recipe's `deploy:` section and the built INT8 classifier it writes router.yaml
(validated with the router's own loader, so schema drift fails the build), Kubernetes
manifests (native sidecar), a Dockerfile, Prometheus alerts/scrape config and a Grafana
dashboard; the topics of `deploy.sensitivity` get their thresholds, chosen on the eval
split with the built model (pipeline/deploy/topics.py). A recipe without `deploy:` gets
no deploy/ folder, and the build says so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pipeline import operating_point
from pipeline.data import load_split
from pipeline.deploy import dockerfile, forecast, grafana, k8s, prometheus, router_config, topics
from pipeline.deploy.dockerfile import ROUTER_REQUIREMENTS
from pipeline.errors import StageFailed
from pipeline.stage import Stage, StageContext

TOKENIZER_SUFFIXES = {".json", ".txt", ".model"}
"""Tokenizer and label files beside the model (tokenizer.json, vocab.txt, config.json, …)."""

README = """\
# Router sidecar for {bundle}

- `router.yaml`: `edgepack router --config deploy/router.yaml` (run from the bundle root).
- `k8s/`: `kubectl apply -f deploy/k8s/` (Kubernetes >= {kube}: native sidecar).
- `Dockerfile`: `docker build -f deploy/Dockerfile --build-context edgepack-src=<edgepack
  checkout> -t {image} .` from the bundle root (not built by the pipeline: no Docker there).
- `prometheus/alerts.yaml`, `prometheus/forecast.yaml` (load forecast recording rules)
  and `prometheus/scrape.yaml` (loads both); `grafana/dashboard.json`.
- Autoscaling: {scaler}

Listening: {listening}

Shutdown: the app container stops first, then the router waits `pre_stop_s`, turns unready
and drains in-flight requests; `drain_grace_s` bounds its whole drain, SIGTERM to exit,
streams included; terminationGracePeriodSeconds covers all three. Requests longer than the
drain grace end as errors (a stream is cut broken): raise `drain_grace_s` for long
generations.
"""


SCALERS = {
    "keda": "`k8s/{file}`, a KEDA (>= {keda}) ScaledObject on the forecast replica rule\n"
    "  of `prometheus/forecast.yaml` (Prometheus must load it); CPU as a reactive floor.",
    "hpa": "`k8s/{file}`, a reactive HorizontalPodAutoscaler (CPU, in-flight); no KEDA.",
}
LISTEN_LOOPBACK = """the router listens on 127.0.0.1 in the app's pod. It decides what
may leave for the cloud and the app is its only client; on the pod's loopback nothing
else in the cluster can send it requests (with any headers: a caller's name, a priority),
read its /metrics or reach its control endpoints. Its probes run inside its container
(exec). Prometheus scrapes pods through a Service: to scrape the router, or to let other
workloads call it, set `deploy.service: true` (it then listens on 0.0.0.0 behind
k8s/40-service.yaml; restrict who may reach it with a NetworkPolicy)."""
LISTEN_SERVICE = """the recipe asked for a Service (`deploy.service: true`): the router
listens on 0.0.0.0 behind k8s/40-service.yaml, so any pod that can reach the Service can
send it requests. Trusted callers prove themselves with a token (classifier.caller_tokens,
from a Secret), never by a header alone; restrict who may reach the Service with a
NetworkPolicy."""


def classifier_files(ctx: StageContext) -> list[str]:
    """Bundle-relative files the router loads: the INT8 model plus the tokenizer files."""
    model = ctx.inputs["quantize"] / "onnx" / "model.int8.onnx"
    if not model.is_file():
        raise StageFailed("router", "the quantize stage produced no onnx/model.int8.onnx")
    tokenizer_dir = ctx.inputs["export"] / "onnx"
    extras = sorted(
        p.name for p in tokenizer_dir.iterdir() if p.is_file() and p.suffix in TOKENIZER_SUFFIXES
    )
    if "tokenizer.json" not in extras:
        raise StageFailed("router", "the export stage produced no onnx/tokenizer.json")
    return ["onnx/model.int8.onnx", *(f"onnx/{name}" for name in extras)]


def _source(ctx: StageContext, rel: str) -> Path:
    for stage in ("quantize", "export"):
        if (ctx.inputs[stage] / rel).is_file():
            return ctx.inputs[stage] / rel
    raise StageFailed("router", f"no upstream stage holds {rel}")


def check_in_bundle_layout(ctx: StageContext, config_text: str, files: list[str]) -> None:
    """Load router.yaml where it will live (deploy/ beside onnx/), with links to the files."""
    with tempfile.TemporaryDirectory(prefix="edgepack-router-") as tmp:
        root = Path(tmp)
        (root / "deploy").mkdir()
        (root / "onnx").mkdir()
        for rel in files:
            (root / rel).symlink_to(_source(ctx, rel))
        (root / "deploy" / "router.yaml").write_text(config_text)
        router_config.validate(root / "deploy" / "router.yaml")


def topic_thresholds(ctx: StageContext) -> dict[str, dict]:
    """Each topic's threshold, chosen on the eval split's public rows (deploy/topics.py)."""
    recipe = ctx.recipe
    assert recipe.deploy is not None
    rows = load_split(recipe, "eval")
    public = [r.text for r in rows if r.label != recipe.positive_label]
    confidential = [r.text for r in rows if r.label == recipe.positive_label]
    try:
        embedder = topics.Embedder(
            _source(ctx, "onnx/model.int8.onnx"),
            _source(ctx, "onnx/tokenizer.json"),
            recipe.training.max_length,
        )
        chosen = topics.choose(embedder, recipe.deploy.sensitivity.topics, public, confidential)
    except ValueError as exc:
        raise StageFailed("router", f"deploy.sensitivity.topics: {exc}") from None
    for name, row in chosen.items():
        ctx.note(
            f"topic {name}: threshold {row['threshold']} (highest public eval row "
            f"{row['public_max']}); reaches {row['confidential_reached']} of "
            f"{row['confidential_rows']} confidential eval rows"
        )
    return chosen


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def run(ctx: StageContext) -> dict:
    recipe, deploy = ctx.recipe, ctx.recipe.deploy
    if deploy is None:
        ctx.note("the recipe has no deploy: section, so no deploy/ folder (router sidecar)")
        return {"skipped": "no deploy section"}
    bundle = f"{recipe.name}-{ctx.target.name}"
    files = classifier_files(ctx)
    point = operating_point.read(ctx.inputs["export"] / "onnx")
    chosen = topic_thresholds(ctx) if deploy.sensitivity.topics else {}
    config = router_config.router_config(
        deploy,
        positive_label=recipe.positive_label,
        max_length=recipe.training.max_length,
        threshold=point if point is not None else operating_point.CEILING,
        topic_thresholds={name: row["threshold"] for name, row in chosen.items()},
    )
    config_text = router_config.render(
        config, f"Router config for {bundle}; paths are relative to this file."
    )
    check_in_bundle_layout(ctx, config_text, files)

    out = ctx.out / "deploy"
    write(out / "router.yaml", config_text)
    for name, (header, resource) in k8s.manifests(deploy, recipe.name, config_text).items():
        write(out / "k8s" / name, k8s.render(header, resource))
    write(out / "Dockerfile", dockerfile.dockerfile(deploy, bundle, files))
    write(out / "Dockerfile.dockerignore", dockerfile.dockerignore(files))
    write(out / "requirements.txt", dockerfile.requirements())
    rules = prometheus.alert_rules(deploy)
    write(out / "prometheus" / "alerts.yaml", prometheus.render(rules, "Router alert rules."))
    forecasts = forecast.recording_rules(deploy.autoscaling)
    header = f"Router load forecast {deploy.autoscaling.forecast.horizon_min} min ahead."
    write(out / "prometheus" / "forecast.yaml", prometheus.render(forecasts, header))
    scrape = prometheus.render(prometheus.scrape_config(deploy), "Scrapes the router Service.")
    write(out / "prometheus" / "scrape.yaml", scrape)
    write(out / "grafana" / "dashboard.json", json.dumps(grafana.dashboard(recipe.name), indent=2))
    scaler_file = k8s.autoscaler(deploy, recipe.name)[0]
    scaler = SCALERS[deploy.autoscaling.scaler].format(file=scaler_file, keda=k8s.MIN_KEDA)
    readme = README.format(
        bundle=bundle,
        kube=k8s.MIN_KUBERNETES,
        image=deploy.image,
        scaler=scaler,
        listening=LISTEN_SERVICE if deploy.service else LISTEN_LOOPBACK,
    )
    write(out / "README.md", readme)
    ctx.note(
        f"deploy/: router.yaml, k8s (Kubernetes >= {k8s.MIN_KUBERNETES}), Dockerfile (not built)"
    )
    return {
        "image": deploy.image,
        "kubernetes_min": k8s.MIN_KUBERNETES,
        "termination_grace_s": deploy.termination_grace_s,
        "onprem_upstreams": len(deploy.onprem.upstreams),
        "alerts": len(rules["groups"][0]["rules"]),
        "scaler": scaler_file,
        "dashboard_panels": len(grafana.PANELS),
        "classifier_files": files,
        "topics": chosen,
    }


STAGE = Stage(
    name="router",
    run=run,
    needs=("export", "quantize"),
    recipe_fields=("deploy", "name", "labels", "positive_label", "training.max_length"),
    data_splits=("eval",),  # topic thresholds are chosen on it
    target_fields=("name",),
    packages=ROUTER_REQUIREMENTS,
)  # fmt: skip
