"""quantize (chat): weight-only INT8/INT4 (MatMulNBits) → onnx/model.int8.onnx,
onnx/model.int4.onnx, each gated by the recipe's budget against FP32.

Every variant the recipe asks for must stay within its budget on eval perplexity and
greedy-token agreement (pipeline/chat/weight_only.py), else the stage fails and nothing
reaches dist/.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.chat.data import load_chat_split
from pipeline.chat.decode import OnnxDecoder
from pipeline.chat.recipe import Budget, ChatRecipe
from pipeline.chat.tokens import encode
from pipeline.chat.weight_only import BITS, agreement, perplexity, quantize, reference
from pipeline.errors import StageFailed
from pipeline.stage import Stage, StageContext
from pipeline.stages.chat_export import MODEL_FILE, ONNX_DIR, eval_prompts, model_bytes

VARIANT_FILE = "model.{variant}.onnx"


def verdict(fp32_ppl: float, ppl: float, agree: float, budget: Budget) -> list[str]:
    """What is over budget, in words; empty when the variant passes."""
    over = []
    increase = ppl / fp32_ppl - 1
    if not increase <= budget.max_perplexity_increase:  # also catches NaN
        over.append(f"perplexity +{increase:.2%} > +{budget.max_perplexity_increase:.2%} allowed")
    if not agree >= budget.min_token_agreement:
        over.append(f"token agreement {agree:.2%} < {budget.min_token_agreement:.2%} required")
    return over


def run(ctx: StageContext) -> dict:
    from transformers import AutoTokenizer

    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    source = ctx.inputs["export"] / ONNX_DIR
    out = ctx.out / ONNX_DIR
    out.mkdir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    conversations = load_chat_split(recipe, "eval")
    data = [encode(tokenizer, tokenizer.chat_template, c, recipe.training.max_length)
            for c in conversations]  # fmt: skip
    ctx.progress("FP32: eval perplexity and greedy reference")
    fp32 = OnnxDecoder(source / MODEL_FILE)
    ref = reference(fp32, eval_prompts(recipe, tokenizer), recipe.eval.new_tokens)
    fp32_ppl = perplexity(fp32, data)
    fp32_bytes = model_bytes(source)
    variants, failures = {}, []
    for variant in recipe.quantize.variants:
        ctx.progress(f"{variant}: MatMulNBits, block {recipe.quantize.block_size}")
        path = out / VARIANT_FILE.format(variant=variant)
        q = recipe.quantize
        quantize(source / MODEL_FILE, path, BITS[variant], q.block_size, q.symmetric,
                 q.accuracy_level)  # fmt: skip
        decoder = OnnxDecoder(path)
        ppl, agree = perplexity(decoder, data), agreement(decoder, ref)
        size = sum(p.stat().st_size for p in out.glob(f"{path.name}*"))
        over = verdict(fp32_ppl, ppl, agree, getattr(recipe.eval, variant))
        variants[variant] = {
            "bits": BITS[variant],
            "perplexity": ppl,
            "perplexity_increase": ppl / fp32_ppl - 1,
            "token_agreement": agree,
            "size_bytes": size,
            "size_ratio": size / fp32_bytes,
        }
        failures += [f"{variant}: {reason}" for reason in over]
    if failures:
        raise StageFailed("quantize", "over the recipe's eval budget: " + "; ".join(failures))
    ctx.note(
        "; ".join(
            f"{v}: perplexity {m['perplexity_increase']:+.2%}, agreement "
            f"{m['token_agreement']:.2%}, {m['size_ratio']:.2f}x FP32 size"
            for v, m in variants.items()
        )
    )
    return {
        "fp32": {"perplexity": fp32_ppl, "size_bytes": fp32_bytes},
        "variants": variants,
        "block_size": recipe.quantize.block_size,
        "symmetric": recipe.quantize.symmetric,
        "accuracy_level": recipe.quantize.accuracy_level,
        "agreement_tokens": sum(len(c) for c in ref.continuations),
        "eval_conversations": len(data),
    }


def variant_path(quantize_out: Path, variant: str) -> Path:
    return quantize_out / ONNX_DIR / VARIANT_FILE.format(variant=variant)


STAGE = Stage(
    name="quantize",
    run=run,
    needs=("export",),
    recipe_fields=("quantize", "eval", "training.max_length"),
    data_splits=("eval",),
    packages=("onnx", "onnxruntime", "onnx-ir", "transformers", "tokenizers"),
)
