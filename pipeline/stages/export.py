"""export: the merged model → onnx/model.onnx (FP32), checked against PyTorch.

optimum's `main_export` knows BERT's ONNX config (inputs, dynamic axes, opset needs).
Its own validation runs on random inputs and only warns when it fails, so we compare
PyTorch and ONNX Runtime logits ourselves on real eval texts, padded batches included,
and fail the stage when they differ by more than the recipe's atol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data import load_split
from pipeline.errors import StageFailed
from pipeline.model_source import offline
from pipeline.stage import Stage, StageContext

ONNX_DIR = "onnx"
MODEL_FILE = "model.onnx"
VALIDATION_TEXTS = 48
VALIDATION_BATCH = 16


def export_opset(recipe_opset: int, target_max: int) -> int:
    """The recipe's preferred opset, never above what the target's runtime can load."""
    return min(recipe_opset, target_max)


def run_main_export(merged: Path, out: Path, opset: int) -> None:
    """optimum's export, its chatter (tracer warnings, opset advice) kept off the console."""
    import warnings

    from optimum.exporters.onnx import main_export
    from optimum.utils import logging as optimum_logging
    from transformers.utils import logging as hf_logging

    optimum_logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _main_export(main_export, merged, out, opset)


def _main_export(main_export: Any, merged: Path, out: Path, opset: int) -> None:
    main_export(
        model_name_or_path=str(merged),
        output=out,
        task="text-classification",
        opset=opset,
        device="cpu",
        do_validation=False,  # see the module docstring: we validate on real texts
        local_files_only=True,
        library_name="transformers",
    )


def validation_texts(ctx: StageContext) -> list[str]:
    """A spread of real eval texts (short and long) so padding paths are exercised."""
    texts = sorted((e.text for e in load_split(ctx.recipe, "eval")), key=len)
    step = max(1, len(texts) // VALIDATION_TEXTS)
    return texts[::step][:VALIDATION_TEXTS]


def max_abs_diff(merged: Path, onnx_path: Path, texts: list[str], max_length: int) -> float:
    """Largest |logit difference| between PyTorch and ONNX Runtime over `texts`."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    worst = 0.0
    for start in range(0, len(texts), VALIDATION_BATCH):
        batch = tokenizer(
            texts[start : start + VALIDATION_BATCH],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        feed: dict[str, Any] = {k: v.astype(np.int64) for k, v in batch.items() if k in names}
        onnx_logits = session.run(["logits"], feed)[0]
        with torch.inference_mode():
            torch_logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits
        worst = max(worst, float(np.abs(onnx_logits - torch_logits.numpy()).max()))
    return worst


def onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def run(ctx: StageContext) -> dict:
    offline()
    merged = ctx.inputs["finetune"] / "_merged"
    opset = export_opset(ctx.recipe.export.opset, ctx.target.onnx_max_opset)
    out = ctx.out / ONNX_DIR
    ctx.progress(f"optimum main_export, opset {opset}")
    run_main_export(merged, out, opset)
    model_path = out / MODEL_FILE
    if not model_path.is_file():
        raise StageFailed("export", f"optimum wrote no {MODEL_FILE} into {out}")
    ctx.progress("validating against PyTorch on eval texts")
    texts = validation_texts(ctx)
    diff = max_abs_diff(merged, model_path, texts, ctx.recipe.training.max_length)
    atol = ctx.recipe.export.atol
    if not diff <= atol:  # also catches NaN
        raise StageFailed("export", f"ONNX logits differ from PyTorch by {diff:.2e} > atol {atol}")
    return {
        "opset": onnx_opset(model_path),
        "requested_opset": ctx.recipe.export.opset,
        "target_max_opset": ctx.target.onnx_max_opset,
        "max_abs_diff": diff,
        "atol": atol,
        "validated_on": len(texts),
        "size_bytes": model_path.stat().st_size,
    }


STAGE = Stage(
    name="export",
    run=run,
    needs=("finetune",),
    recipe_fields=("export", "training.max_length"),
    target_fields=("onnx_max_opset",),
    data_splits=("eval",),
    packages=("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime"),
)
