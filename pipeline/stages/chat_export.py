"""export (chat): the merged model → onnx/model.onnx with KV cache, checked token for token.

optimum's `text-generation-with-past` export gives the decoder its past/present inputs and
outputs, which incremental decoding (ONNX Runtime GenAI, our own loop) needs. optimum's
validation compares logits on random inputs; what serving must keep is the generated text,
so the stage decodes greedily from the eval prompts in ONNX Runtime (on the KV cache) and
in transformers, and fails unless every token is the same.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pipeline.chat.data import load_chat_split, prompt_and_reply
from pipeline.chat.decode import OnnxDecoder, stop_ids, torch_greedy
from pipeline.chat.recipe import ChatRecipe
from pipeline.chat.tokens import encode_prompt
from pipeline.errors import StageFailed
from pipeline.model_source import offline
from pipeline.stage import Stage, StageContext

ONNX_DIR = "onnx"
MODEL_FILE = "model.onnx"
TASK = "text-generation-with-past"


def run_main_export(merged: Path, out: Path, opset: int) -> None:
    """optimum's export, its chatter (tracer warnings, opset advice) kept off the console."""
    from optimum.exporters.onnx import main_export
    from optimum.utils import logging as optimum_logging
    from transformers.utils import logging as hf_logging

    optimum_logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(
            model_name_or_path=str(merged),
            output=out,
            task=TASK,
            opset=opset,
            device="cpu",
            do_validation=False,  # see the module docstring: greedy tokens are compared
            local_files_only=True,
            library_name="transformers",
        )


def eval_prompts(recipe: ChatRecipe, tokenizer: object) -> list[list[int]]:
    """Token ids of the first `eval.prompts` eval conversations, up to their last reply."""
    conversations = load_chat_split(recipe, "eval")[: recipe.eval.prompts]
    template = tokenizer.chat_template  # type: ignore[attr-defined]
    return [encode_prompt(tokenizer, template, prompt_and_reply(c)[0]) for c in conversations]


def compare_greedy(merged: Path, onnx_path: Path, prompts: list[list[int]], new_tokens: int):
    """(tokens compared, first mismatch as (prompt, position, torch, onnx) or None)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged, dtype="float32").eval()
    decoder, stop = OnnxDecoder(onnx_path), stop_ids(merged)
    compared = 0
    for index, prompt in enumerate(prompts):
        expected = torch_greedy(model, prompt, new_tokens, stop)
        got = decoder.greedy(prompt, new_tokens, stop)
        for position in range(max(len(expected), len(got))):
            want = expected[position] if position < len(expected) else None
            have = got[position] if position < len(got) else None
            if want != have:
                return compared, (index, position, want, have)
            compared += 1
    return compared, None


def model_bytes(folder: Path) -> int:
    """model.onnx and its external data files, if any."""
    return sum(p.stat().st_size for p in folder.glob(f"{MODEL_FILE}*") if p.is_file())


def run(ctx: StageContext) -> dict:
    offline()
    from transformers import AutoTokenizer

    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    merged = ctx.inputs["finetune"] / "_merged"
    opset = min(recipe.export.opset, ctx.target.onnx_max_opset)
    out = ctx.out / ONNX_DIR
    ctx.progress(f"optimum main_export ({TASK}), opset {opset}")
    run_main_export(merged, out, opset)
    if not (out / MODEL_FILE).is_file():
        raise StageFailed("export", f"optimum wrote no {MODEL_FILE} into {out}")
    ctx.progress("greedy decoding: ONNX Runtime vs PyTorch on eval prompts")
    prompts = eval_prompts(recipe, AutoTokenizer.from_pretrained(merged))
    compared, mismatch = compare_greedy(merged, out / MODEL_FILE, prompts, recipe.eval.new_tokens)
    if mismatch is not None:
        index, position, want, have = mismatch
        raise StageFailed(
            "export",
            f"greedy tokens differ on eval prompt {index}, new token {position}: "
            f"PyTorch {want}, ONNX Runtime {have}",
        )
    return {
        "opset": opset,
        "requested_opset": recipe.export.opset,
        "target_max_opset": ctx.target.onnx_max_opset,
        "kv_cache": True,
        "greedy_equal": {"prompts": len(prompts), "tokens": compared},
        "size_bytes": model_bytes(out),
    }


STAGE = Stage(
    name="export",
    run=run,
    needs=("finetune",),
    recipe_fields=("export", "eval.prompts", "eval.new_tokens"),
    target_fields=("onnx_max_opset",),
    data_splits=("eval",),
    packages=("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime"),
)
