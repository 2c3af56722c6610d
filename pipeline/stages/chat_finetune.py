"""finetune (chat): peft LoRA on the train split's assistant turns → adapter/, _merged/,
eval loss and perplexity.

A plain torch loop, as for the classifier: length-bucketed batches padded to their own
longest row, seeded order, deterministic algorithms, so a rebuild gives the same weights.
The loss covers assistant turns only (pipeline/chat/tokens.py).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.chat.data import Conversation, load_chat_split
from pipeline.chat.model import chat_template, lora_targets, model_config
from pipeline.chat.recipe import ChatRecipe
from pipeline.chat.tokens import IGNORE, Encoded, encode
from pipeline.errors import StageFailed
from pipeline.model_source import offline, resolve_model
from pipeline.seeding import deterministic
from pipeline.stage import Stage, StageContext
from pipeline.stages.finetune import length_buckets
from router.errors import UserError

if TYPE_CHECKING:
    import torch

WARMUP_FRACTION = 0.06
PROGRESS_EVERY_S = 1.0
EVAL_BATCH = 8


def encode_split(
    tokenizer: Any, template: str, conversations: list[Conversation], max_length: int
) -> list[Encoded]:
    """Each conversation's tokens; those left with no assistant token after the cut drop."""
    encoded = [encode(tokenizer, template, c, max_length) for c in conversations]
    return [e for e in encoded if e.trained]


def collate(rows: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, their mask and labels (padding is never trained)."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = (
            torch.tensor(row.input_ids), torch.tensor(row.labels), 1)  # fmt: skip
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(data: list[Encoded], batch_size: int, pad_id: int) -> list[dict]:
    buckets = length_buckets([len(e.input_ids) for e in data], batch_size)
    return [collate([data[i] for i in rows], pad_id) for rows in buckets]


def token_nll(model: Any, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the labelled tokens (each predicted from the
    tokens before it) and how many there are."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    target = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return nll, int((target != IGNORE).sum())


def evaluate(model: Any, data: list[Encoded], pad_id: int) -> dict:
    """Token-weighted loss over the split's assistant tokens, and its perplexity."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in batches(data, EVAL_BATCH, pad_id):
            nll, n = token_nll(model, batch)
            total, count = total + float(nll), count + n
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count}


def build_model(recipe: ChatRecipe, model_dir: Path) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=lora_targets(recipe, model_config(model_dir)["model_type"]),
    )
    return get_peft_model(base, lora)


def train(model: Any, data: list[Encoded], recipe: ChatRecipe, pad_id: int, ctx: StageContext):
    """AdamW with linear warmup/decay over length-bucketed batches in seeded order."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    cfg = recipe.training
    train_batches = batches(data, cfg.batch_size, pad_id)
    total = max(1, math.ceil(cfg.epochs * len(train_batches)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP_FRACTION * total), total)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    started, step, curve, shown = time.perf_counter(), 0, [], 0.0
    model.train()
    while step < total:
        for b in torch.randperm(len(train_batches), generator=order_rng).tolist():
            if step == total:
                break
            nll, count = token_nll(model, train_batches[b])
            loss = nll / count
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            curve.append(round(loss.item(), 5))
            if time.perf_counter() - shown > PROGRESS_EVERY_S or step == total:
                shown = time.perf_counter()
                recent = curve[-20:]
                ctx.progress(f"step {step}/{total}  loss {sum(recent) / len(recent):.4f}")
    return {
        "steps": total,
        "epochs": cfg.epochs,
        "conversations": len(data),
        "trained_tokens": sum(e.trained for e in data),
        "loss_curve": curve,
        "seconds": round(time.perf_counter() - started, 2),
    }


def save(model: Any, tokenizer: Any, recipe: ChatRecipe, out: Path) -> None:
    """adapter/ (public, small; vLLM can serve it on the base) and _merged/ (private: what
    export and the serving packages load), each with the tokenizer and its chat template."""
    model.peft_config["default"].base_model_name_or_path = recipe.model
    model.save_pretrained(out / "adapter", save_embedding_layers=False)
    tokenizer.save_pretrained(out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "_merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "_merged")


def _encoded_splits(recipe: ChatRecipe, tokenizer: Any, template: str):
    max_length = recipe.training.max_length
    try:
        train_data = encode_split(tokenizer, template, load_chat_split(recipe, "train"), max_length)
        eval_data = encode_split(tokenizer, template, load_chat_split(recipe, "eval"), max_length)
    except UserError as exc:
        raise UserError(f"{recipe.path}: {exc.message}") from None
    for split, data in (("train", train_data), ("eval", eval_data)):
        if not data:
            raise StageFailed(
                "finetune", f"data.{split}: no assistant token within training.max_length"
            )
    return train_data, eval_data


def run(ctx: StageContext) -> dict:
    offline()
    import torch
    from transformers import AutoTokenizer

    recipe: ChatRecipe = ctx.recipe  # type: ignore[assignment]
    source = resolve_model(recipe)
    with deterministic(recipe.training.seed, recipe.training.threads):
        ctx.progress(f"loading {recipe.model}")
        tokenizer = AutoTokenizer.from_pretrained(source.path)
        tokenizer.chat_template = chat_template(recipe, source.path)
        train_data, eval_data = _encoded_splits(recipe, tokenizer, tokenizer.chat_template)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        model = build_model(recipe, source.path)
        ctx.progress("evaluating the base model")
        base = evaluate(model, eval_data, pad_id)
        trained = train(model, train_data, recipe, pad_id, ctx)
        ctx.progress("evaluating")
        tuned = evaluate(model, eval_data, pad_id)
        trainable, total = model.get_nb_trainable_parameters()
        save(model, tokenizer, recipe, ctx.out)
    ctx.note(
        f"eval perplexity {base['perplexity']:.3f} (base) → {tuned['perplexity']:.3f} "
        f"over {tuned['tokens']} assistant tokens"
    )
    return {
        "eval": tuned,
        "base_eval": base,
        "train": trained,
        "model": source.fingerprint,
        "trainable_params": trainable,
        "total_params": total,
        "threads": torch.get_num_threads(),
    }


STAGE = Stage(
    name="finetune",
    run=run,
    recipe_fields=("model", "task", "chat_template", "lora", "training"),
    data_splits=("train", "eval"),
    packages=("torch", "transformers", "peft", "tokenizers"),
)
