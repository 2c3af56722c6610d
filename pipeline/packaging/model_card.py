"""MODEL_CARD.md: intended use, data, metrics per variant, deployment and limits."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.packaging.variants import Variant
from pipeline.recipe import Recipe
from pipeline.target import Target


def _table(variants: Sequence[Variant], keys: list[str]) -> list[str]:
    lines = [
        "| variant | file | MiB | CPU ms (median) | " + " | ".join(keys) + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for v in variants:
        latency = "" if v.latency_ms is None else f"{v.latency_ms:.2f}"
        cells = [f"{v.metrics[k]:.4g}" if k in v.metrics else "" for k in keys]
        lines.append(
            f"| {v.name.upper()} | `{v.file}` | {v.size_bytes / 2**20:.2f} | {latency} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def render(
    recipe: Recipe,
    target: Target,
    variants: Sequence[Variant],
    *,
    data: dict[str, dict],
    engine: dict,
    packages: list[str],
) -> str:
    """The card as Markdown; `data` is split → {examples, sha256}."""
    keys = [
        k
        for k in ("accuracy", "precision", "recall", "f1", "n")
        if any(k in v.metrics for v in variants)
    ]
    lines = [
        f"# Model card: {recipe.name} ({target.name})",
        "",
        "## Intended use",
        f"Text classification into {', '.join(f'`{x}`' for x in recipe.labels)}; the positive "
        f"class is `{recipe.positive_label}`. Built by edgepack from `{recipe.model}` with a "
        f"LoRA fine-tune (r={recipe.lora.r}), exported to ONNX and quantized to INT8 for "
        f"{target.description or target.name}.",
        "Use it to route or flag requests, with a human-reviewable fallback; it is not a "
        "guarantee that confidential data is detected.",
        "",
        "## Data",
        "| split | examples | sha256 |",
        "|---|---|---|",
        *[
            f"| {s} | {d.get('examples', '?')} | `{d.get('sha256', '')[:16]}` |"
            for s, d in data.items()
        ],
        f"Texts are truncated to {recipe.training.max_length} tokens in training.",
        "",
        "## Metrics (eval split)",
        *_table(variants, keys),
        "",
        f"INT8 accuracy budget: at most {recipe.eval.int8_budget} points of "
        f"{recipe.eval.metric} below FP32 (the build fails otherwise).",
        "Latency: ONNX Runtime on the build host's CPU, 1 thread, batch 1; medians of "
        "interleaved runs, compare ratios rather than absolute numbers.",
        "",
        "## Deployment",
        f"Packages: {', '.join(packages) or 'none'}. Engine: {engine.get('status', 'none')}"
        + (f" ({engine['reason']})" if engine.get("reason") else "")
        + ".",
        "",
        "## Limits",
        "- Trained and evaluated on the recipe's small data set; accuracy on other text "
        "(languages, domains, formats) is unknown.",
        "- INT8 (especially Q/DQ on TensorRT) can change individual predictions near the "
        "decision boundary even when aggregate accuracy holds.",
        "- TensorRT engines are built for one GPU architecture and TensorRT version "
        f"({target.tensorrt.line + '.x' if target.tensorrt else 'n/a'}); rebuild for others.",
        f"- Inputs longer than {target.profile.sequence.max} tokens must be truncated.",
        "",
    ]
    return "\n".join(lines)
