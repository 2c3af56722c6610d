"""package (chat): what each runtime loads, per target.

- cpu: genai/, an ONNX Runtime GenAI folder with infer.py (the smallest variant that
  passed the gate); jetson-*: the same as jetson/ + jetson.tar.gz, with a README on the
  device's GenAI build and on TensorRT Edge-LLM;
- GPU servers (a100): vllm/ with the merged weights, the `vllm serve` arguments and a
  Kubernetes Deployment + Service;
- sagemaker (where the target lists it): sagemaker/ with the merged weights (uploaded
  uncompressed under an S3 prefix) and deploy.json, checked by botocore;
- every target: MODEL_CARD.md and report.html.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from pipeline.chat import report, serving
from pipeline.chat.decode import decode_speed, stop_ids
from pipeline.chat.genai import write_genai_folder
from pipeline.chat.recipe import ChatRecipe
from pipeline.errors import StageFailed
from pipeline.packaging.tarball import write_tar_gz
from pipeline.stage import Stage, StageContext
from pipeline.stages.chat_export import MODEL_FILE, ONNX_DIR
from pipeline.stages.chat_quantize import variant_path
from pipeline.target import Target

PREFERENCE = ("int4", "int8")
"""Edge folders take the smallest variant that passed the gate."""
SPEED_ROUNDS = 5
SPEED_TOKENS = 32
JETSON_README = """\
# {name} for {target} (ONNX Runtime GenAI)

`{variant}` decoder (weight-only, MatMulNBits) with KV cache, as validated by the build.

    pip install onnxruntime-genai        # CPU; on the Jetson's GPU a CUDA build of it
    python infer.py                      # one user turn per line

On a Jetson, ONNX Runtime GenAI's GPU path needs its CUDA build for JetPack {jetpack}
(built from source or from NVIDIA's Jetson wheels); its CPU build runs the folder as it is.
genai_config.json lists no provider: add `cuda` to `session_options.provider_options` for
the GPU. Neither was run on a device by this build.

TensorRT Edge-LLM (NVIDIA's C++ LLM runtime for Jetson Thor / DRIVE Thor, JetPack 7.x)
does not load this ONNX: its own Python export pipeline reads a Hugging Face checkpoint
(safetensors) and writes the ONNX and sidecar files its engine builder and runtime expect.
Its input is the base model with this build's adapter/ (it supports LoRA) or the merged
weights in vllm/model/ of an a100 build. Not run on a device by this build: no claim.
"""
VLLM_README = """\
# {name}: vLLM on the on-prem GPUs

- `model/`: merged weights (safetensors), tokenizer and chat template.
- `serve.sh`: the exact `vllm serve` command (`args.json`: the same as a list).
- `k8s/`: a Deployment (GPU pods, model from the read-only PVC `{claim}`) and the Service
  `{service}` the router's on-prem upstream points at ({url}).

Copy model/ into the volume behind `{claim}`, then `kubectl apply -f vllm/k8s/`.
"""


def chosen_variant(quantize_metrics: dict) -> str:
    passed = quantize_metrics["variants"]
    return next((v for v in PREFERENCE if v in passed), "fp32")


def _model_file(ctx: StageContext, variant: str) -> Path:
    if variant == "fp32":
        return ctx.inputs["export"] / ONNX_DIR / MODEL_FILE
    return variant_path(ctx.inputs["quantize"], variant)


def _edge(ctx: StageContext, folder: str, variant: str) -> list[str]:
    onnx_dir = ctx.inputs["export"] / ONNX_DIR
    config = json.loads((onnx_dir / "config.json").read_text())
    dest = write_genai_folder(ctx.out / folder, _model_file(ctx, variant), onnx_dir, config,
                              stop_ids(onnx_dir), provider="cpu")  # fmt: skip
    if folder != "jetson":
        return [f"{folder}/"]
    (dest / "README.md").write_text(
        JETSON_README.format(
            name=ctx.recipe.name,
            target=ctx.target.name,
            variant=variant,
            jetpack=ctx.target.jetpack,
        )
    )
    write_tar_gz(dest, ctx.out / "jetson.tar.gz", prefix="jetson")
    return ["jetson/", "jetson.tar.gz"]


def _copy_merged(ctx: StageContext, dest: Path) -> None:
    shutil.copytree(ctx.inputs["finetune"] / "_merged", dest)


def _yaml(path: Path, resource: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resource, sort_keys=False))


def _vllm(ctx: StageContext) -> list[str]:
    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    out = ctx.out / "vllm"
    _copy_merged(ctx, out / "model")
    args = serving.vllm_args(recipe)
    (out / "args.json").write_text(json.dumps(args, indent=1) + "\n")
    script = "#!/bin/sh\n# Serve the merged weights in model/ (run from vllm/).\nexec "
    local = [*args[:2], "model", *args[3:]]  # the model folder beside the script
    (out / "serve.sh").write_text(script + " ".join(local) + "\n")
    (out / "serve.sh").chmod(0o755)
    _yaml(out / "k8s" / "10-deployment.yaml", serving.vllm_deployment(recipe))
    _yaml(out / "k8s" / "20-service.yaml", serving.vllm_service(recipe))
    (out / "README.md").write_text(VLLM_README.format(
        name=recipe.name, claim=f"{recipe.served_name}-model",
        service=serving.service_name(recipe), url=serving.service_url(recipe)))  # fmt: skip
    return ["vllm/"]


def _sagemaker(ctx: StageContext) -> list[str]:
    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    requests = serving.sagemaker_requests(recipe, ctx.target.name)
    errors = serving.botocore_errors(requests)
    if errors:
        raise StageFailed("package", "sagemaker/deploy.json fails botocore: " + "; ".join(errors))
    out = ctx.out / "sagemaker"
    _copy_merged(ctx, out / "model")
    requests["model_data"] = {
        "upload": "sagemaker/model/ to the S3 prefix named in create_model (uncompressed)",
        "mounted_at": serving.SAGEMAKER_MODEL_DIR,
    }
    (out / "deploy.json").write_text(json.dumps(requests, indent=2, sort_keys=True) + "\n")
    return ["sagemaker/"]


def serves_vllm(target: Target) -> bool:
    """A GPU server target (a100): the on-prem GPUs run vLLM."""
    return target.runtime == "tensorrt" and target.arch == "x86_64"


def edge_folder(target: Target) -> str | None:
    if "jetson" in target.packages:
        return "jetson"
    return "genai" if target.runtime == "onnxruntime" else None


def run(ctx: StageContext) -> dict:
    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    target, quantized = ctx.target, ctx.upstream_metrics["quantize"]
    variant = chosen_variant(quantized)
    written: dict[str, list[str]] = {}
    folder = edge_folder(target)
    if folder is not None:
        written[folder] = _edge(ctx, folder, variant)
    if serves_vllm(target):
        written["vllm"] = _vllm(ctx)
    if "sagemaker" in target.packages:
        written["sagemaker"] = _sagemaker(ctx)

    ctx.progress("measuring CPU decode speed per variant")
    models = {"fp32": _model_file(ctx, "fp32")}
    models.update({v: _model_file(ctx, v) for v in quantized["variants"]})
    prompt = list(range(1, 33))
    speed = decode_speed(models, prompt, SPEED_TOKENS, SPEED_ROUNDS)
    table = report.rows(quantized, speed)
    described = {
        "genai": f"ONNX Runtime GenAI folder ({variant}) with infer.py",
        "jetson": f"ONNX Runtime GenAI folder ({variant}) for the Jetson, README, tarball",
        "vllm": "merged weights, vllm serve arguments, Kubernetes Deployment + Service",
        "sagemaker": "merged weights and deploy.json (vLLM container for SageMaker)",
    }
    packages = {f"{k}/": described[k] for k in written} | {"adapter/": "the LoRA adapter"}
    (ctx.out / "MODEL_CARD.md").write_text(
        report.model_card(recipe, target, table, ctx.upstream_metrics["finetune"], packages)
    )
    losses = ctx.upstream_metrics["finetune"]["train"]["loss_curve"]
    (ctx.out / "report.html").write_text(report.report_html(recipe, target, table, losses))
    return {
        "packages": written,
        "edge_variant": variant if folder else None,
        "decode_tokens_per_s": speed,
        "speed": {
            "prompt_tokens": len(prompt),
            "new_tokens": SPEED_TOKENS,
            "rounds": SPEED_ROUNDS,
            "threads": 1,
            "statistic": "median",
        },
    }


STAGE = Stage(
    name="package",
    run=run,
    needs=("finetune", "export", "quantize"),
    recipe_fields=("name", "model", "lora", "eval", "quantize", "serve", "deploy"),
    target_fields=("name", "arch", "runtime", "jetpack", "packages"),
    packages=("onnxruntime", "onnx", "matplotlib", "botocore", "pyyaml"),
)
