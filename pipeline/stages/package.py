"""package: what each runtime loads, per the target's package formats.

jetson/ + jetson.tar.gz (on-device engine build kit and runner), triton/<name>/ (Triton
model repository), sagemaker/ (model.tar.gz + deploy.json), and for every target
MODEL_CARD.md and report.html (FP32 vs INT8: accuracy, latency, size).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.stage import Stage, StageContext

LATENCY_ROUNDS = 20


def run(ctx: StageContext) -> dict:
    from pipeline.packaging.variants import collect, measure_latency

    target = ctx.target
    onnx_dir = ctx.inputs["export"] / "onnx"
    quantized = ctx.inputs["quantize"] / "onnx"
    models = {
        "fp32": onnx_dir / "model.onnx",
        "int8": quantized / "model.int8.onnx",
        "qdq": quantized / "model.qdq.onnx",
    }
    written: dict[str, list[str]] = {}
    if "jetson" in target.packages:
        written["jetson"] = _jetson(ctx, onnx_dir, models)
    if "triton" in target.packages or "sagemaker" in target.packages:
        written.update(_triton_and_sagemaker(ctx, models))

    ctx.progress("measuring CPU latency per variant")
    variants = collect(models, ctx.upstream_metrics)
    sequence = min(128, target.profile.sequence.opt)
    load_before = _loadavg()
    latency = measure_latency(
        {v.name: models[v.name] for v in variants}, sequence=sequence, rounds=LATENCY_ROUNDS
    )
    for v in variants:
        v.latency_ms = latency.get(v.name)
    _card_and_report(ctx, variants, written)
    sizes = {
        p.relative_to(ctx.out).as_posix(): p.stat().st_size
        for p in sorted(ctx.out.rglob("*.tar.gz"))
    }
    return {
        "packages": written,
        "variants": [v.to_dict() for v in variants],
        "latency": {
            "unit": "ms, median",
            "batch": 1,
            "sequence": sequence,
            "threads": 1,
            "rounds": LATENCY_ROUNDS,
            "loadavg": [load_before, _loadavg()],
        },
        "archive_bytes": sizes,
    }


def _jetson(ctx: StageContext, onnx_dir: Path, models: dict[str, Path]) -> list[str]:
    from pipeline.packaging.jetson import write_bundle, write_bundle_tarball

    bundle = write_bundle(
        ctx.out / "jetson",
        ctx.recipe,
        ctx.target,
        onnx_dir=onnx_dir,
        qdq=models["qdq"],
        int8=models["int8"],
    )
    write_bundle_tarball(bundle, ctx.out / "jetson.tar.gz")
    return ["jetson/", "jetson.tar.gz"]


def _triton_and_sagemaker(ctx: StageContext, models: dict[str, Path]) -> dict[str, list[str]]:
    from pipeline.packaging.sagemaker import write_sagemaker
    from pipeline.packaging.triton import model_name, write_repository

    target = ctx.target
    name = model_name(ctx.recipe.name)
    engine = ctx.upstream_metrics.get("engine", {})
    if target.runtime == "tensorrt":
        plan = ctx.inputs["engine"] / "engine" / "model.plan"
        model_file = plan if plan.is_file() else None
        io = {k: v["dtype"] for k, v in engine.get("io", {}).items()}
    else:
        model_file, io = models["int8"], {}
    public = "triton" in target.packages
    root = ctx.out / ("triton" if public else "_triton")
    onnx_for_io = models["qdq"] if target.runtime == "tensorrt" else models["int8"]
    folder = write_repository(
        root,
        name,
        target,
        onnx_for_io=onnx_for_io,
        model_file=model_file,
        labels=ctx.recipe.labels,
        io_dtypes=io or None,
    )
    written = {"triton": [f"triton/{name}/"]} if public else {}
    if model_file is None:
        waiting = f"triton/{name}/1/model.plan" + (
            " and sagemaker/model.tar.gz wait" if "sagemaker" in target.packages else " waits"
        )
        ctx.note(f"{waiting} for the engine (engine {engine.get('status', 'deferred')})")
    if "sagemaker" in target.packages:
        write_sagemaker(ctx.out / "sagemaker", folder, target, complete=model_file is not None)
        written["sagemaker"] = ["sagemaker/deploy.json"] + (
            ["sagemaker/model.tar.gz"] if model_file is not None else []
        )
    return written


def _card_and_report(ctx: StageContext, variants: list, written: dict) -> None:
    from pipeline.cache_key import sha256_file
    from pipeline.packaging import model_card, report

    recipe, target = ctx.recipe, ctx.target
    data = {}
    for split in ("train", "eval", "calib"):
        path = recipe.data_path(split)
        lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        data[split] = {"examples": len(lines), "sha256": sha256_file(path)}
    engine = ctx.upstream_metrics.get("engine", {})
    packages = sorted(written)
    (ctx.out / "MODEL_CARD.md").write_text(
        model_card.render(recipe, target, variants, data=data, engine=engine, packages=packages)
    )
    summary = [
        ("recipe", recipe.name),
        ("model", recipe.model),
        ("target", target.name),
        ("runtime", target.runtime),
        ("packages", ", ".join(packages)),
        (
            "engine",
            engine.get("status", "none")
            + (f": {engine['reason']}" if engine.get("reason") else ""),
        ),
    ]
    notes = [
        "Latency: ONNX Runtime CPU on the build host, 1 thread, batch 1, median of "
        f"{LATENCY_ROUNDS} interleaved rounds; compare ratios, not absolute times.",
        f"Accuracy: eval split, metric {recipe.eval.metric}; INT8 budget "
        f"{recipe.eval.int8_budget} points.",
    ]
    (ctx.out / "report.html").write_text(
        report.render(
            title=f"{recipe.name} for {target.name}",
            summary=summary,
            variants=variants,
            metric=recipe.eval.metric,
            notes=notes,
        )
    )


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


STAGE = Stage(
    name="package",
    run=run,
    needs=("export", "quantize", "engine"),
    recipe_fields=("name", "model", "labels", "positive_label", "lora", "training", "eval"),
    target_fields=(
        "name",
        "description",
        "arch",
        "runtime",
        "onnx_max_opset",
        "gpu",
        "tensorrt",
        "jetpack",
        "engine_build",
        "profile",
        "packages",
    ),
    data_splits=("train", "eval", "calib"),
    packages=("onnxruntime", "onnx", "matplotlib", "tritonclient"),
    modules=(
        "pipeline.packaging.jetson",
        "pipeline.packaging.triton",
        "pipeline.packaging.sagemaker",
        "pipeline.packaging.tarball",
        "pipeline.packaging.model_card",
        "pipeline.packaging.report",
        "pipeline.packaging.variants",
        "pipeline.packaging.device_build",
        "pipeline.engine.flags",
        "pipeline.engine.target_spec",
        "pipeline.signature",
    ),
)
