"""The `router` stage: everything needed to run the router sidecar, under deploy/.

From the recipe's `deploy:` section and the built INT8 classifier it writes router.yaml
(validated with the router's own loader, so schema drift fails the build), Kubernetes
manifests (native sidecar), a Dockerfile, Prometheus alerts/scrape config and a Grafana
dashboard. A recipe without `deploy:` gets no deploy/ folder, and the build says so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pipeline import operating_point
from pipeline.deploy import dockerfile, grafana, k8s, prometheus, router_config
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
- `prometheus/alerts.yaml` + `prometheus/scrape.yaml`; `grafana/dashboard.json`.

Shutdown: the app container stops first, then the router waits `pre_stop_s`, turns unready
and drains in-flight requests for up to `drain_grace_s`; terminationGracePeriodSeconds
covers all three. Requests longer than the drain grace are cut: raise `drain_grace_s` for
long generations.
"""


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
    config = router_config.router_config(
        deploy,
        positive_label=recipe.positive_label,
        max_length=recipe.training.max_length,
        threshold=point if point is not None else operating_point.CEILING,
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
    scrape = prometheus.render(prometheus.scrape_config(deploy), "Scrapes the router Service.")
    write(out / "prometheus" / "scrape.yaml", scrape)
    write(out / "grafana" / "dashboard.json", json.dumps(grafana.dashboard(recipe.name), indent=2))
    write(
        out / "README.md", README.format(bundle=bundle, kube=k8s.MIN_KUBERNETES, image=deploy.image)
    )
    ctx.note(
        f"deploy/: router.yaml, k8s (Kubernetes >= {k8s.MIN_KUBERNETES}), Dockerfile (not built)"
    )
    return {
        "image": deploy.image,
        "kubernetes_min": k8s.MIN_KUBERNETES,
        "termination_grace_s": deploy.termination_grace_s,
        "onprem_upstreams": len(deploy.onprem.upstreams),
        "alerts": len(rules["groups"][0]["rules"]),
        "dashboard_panels": len(grafana.PANELS),
        "classifier_files": files,
    }


STAGE = Stage(
    name="router",
    run=run,
    needs=("export", "quantize"),
    recipe_fields=("deploy", "name", "labels", "positive_label", "training.max_length"),
    target_fields=("name",),
    packages=ROUTER_REQUIREMENTS,
    modules=(
        "pipeline.deploy.spec", "pipeline.deploy.router_config", "pipeline.deploy.k8s",
        "pipeline.deploy.dockerfile", "pipeline.deploy.prometheus", "pipeline.deploy.grafana",
        "pipeline.operating_point",
        "router.config", "router.metrics", "router.admission", "router.breaker", "router.cache",
        "router.drain", "router.retry",
    ),
)  # fmt: skip
