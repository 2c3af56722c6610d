"""router (chat): deploy/router.yaml pointing the router at what this build packaged.

The on-prem pool is the vLLM Service of vllm/ where the target builds it (a100), else the
recipe's `deploy.onprem`; the SageMaker endpoint is the one sagemaker/deploy.json creates.
The router's sensitivity classifier is not part of a chat build: router.yaml names it in
../classifier/ (a classifier build's onnx/ files), and the router refuses to start without
it, so a chat bundle never routes unclassified. The sidecar's Kubernetes manifests and
image come from the classifier build's deploy/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.chat import serving
from pipeline.chat.recipe import ChatRecipe
from pipeline.deploy import router_config
from pipeline.deploy.spec import PoolSpec, Upstream
from pipeline.errors import StageFailed
from pipeline.stage import Stage, StageContext
from pipeline.stages.chat_package import serves_vllm
from router.config import load_config
from router.errors import UserError

CLASSIFIER = {"path": "../classifier/model.int8.onnx", "tokenizer": "../classifier/tokenizer.json"}
README = """\
# Router config for {bundle}

`router.yaml` sends confidential requests to {onprem} and public ones to the SageMaker
endpoint `{endpoint}` ({region}).

The sensitivity classifier comes from a classifier build (recipes/sensitivity-minilm.yaml):
copy its `onnx/model.int8.onnx`, `onnx/tokenizer.json` and `onnx/config.json` into
`classifier/` beside this folder, and set its operating point
(`classifier.model.threshold`, written in that build's deploy/router.yaml). Without them
the router does not start. Its Kubernetes manifests, image and alerts are that build's
deploy/ too; use this router.yaml in their ConfigMap.
"""


def onprem_pool(ctx: StageContext) -> PoolSpec:
    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    if serves_vllm(ctx.target):
        url = serving.service_url(recipe)
        return PoolSpec(upstreams=[Upstream(name=serving.service_name(recipe), url=url)])
    return recipe.deploy.onprem  # type: ignore[union-attr]


def validate(text: str) -> None:
    """The router's own loader, with the file where it will live (deploy/ in the bundle)."""
    with tempfile.TemporaryDirectory(prefix="edgepack-router-") as tmp:
        path = Path(tmp) / "deploy" / "router.yaml"
        path.parent.mkdir()
        path.write_text(text)
        try:
            load_config(path)
        except UserError as exc:
            raise StageFailed("router", f"generated router.yaml is invalid: {exc}") from None


def run(ctx: StageContext) -> dict:
    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    if recipe.deploy is None:
        ctx.note("the recipe has no deploy: section, so no deploy/ folder (router sidecar)")
        return {"skipped": "no deploy section"}
    pool = onprem_pool(ctx)
    sagemaker = recipe.deploy.sagemaker.model_copy(
        update={"endpoint": serving.endpoint_name(recipe)}
    )
    deploy = recipe.deploy.model_copy(update={"onprem": pool, "sagemaker": sagemaker})
    config = router_config.router_config(deploy, positive_label="confidential", max_length=128)
    config["classifier"]["model"].update(CLASSIFIER)
    if recipe.deploy.router:
        config = router_config.deep_merge(config, recipe.deploy.router)
    bundle = f"{recipe.name}-{ctx.target.name}"
    text = router_config.render(config, f"Router config for {bundle} (chat model).")
    validate(text)
    out = ctx.out / "deploy"
    out.mkdir()
    (out / "router.yaml").write_text(text)
    onprem = ", ".join(u.url for u in pool.upstreams)
    readme = README.format(
        bundle=bundle, onprem=onprem, endpoint=sagemaker.endpoint, region=sagemaker.region
    )
    (out / "README.md").write_text(readme)
    return {
        "onprem_upstreams": [u.url for u in pool.upstreams],
        "sagemaker_endpoint": sagemaker.endpoint,
    }


STAGE = Stage(
    name="router",
    run=run,
    recipe_fields=("name", "deploy", "serve"),
    target_fields=("name", "runtime", "packages"),
    packages=("pyyaml",),
)
