"""finetune: peft LoRA on the recipe's train split → adapter/, _merged/, eval metrics.

A plain torch loop rather than HF Trainer: on a 2-core CPU the wins are dynamic padding
and length-bucketed batches (most prompts are short), which a dozen lines do directly.
Deterministic for a given seed and thread count: seeded init, dropout and batch order.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data import Example, load_split
from pipeline.model_source import offline, resolve_model
from pipeline.recipe import Recipe
from pipeline.scoring import classification_metrics
from pipeline.stage import Stage, StageContext

if TYPE_CHECKING:
    import torch

WARMUP_FRACTION = 0.06
PROGRESS_EVERY_S = 1.0


@dataclass
class Encoded:
    """Tokenized split, unpadded; batches are padded to their own longest row."""

    input_ids: list[list[int]]
    labels: list[int]


def encode(tokenizer: Any, examples: list[Example], labels: list[str], max_length: int) -> Encoded:
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
    return Encoded(ids["input_ids"], [labels.index(e.label) for e in examples])


def length_buckets(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar length, so padding (wasted compute) stays small."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(data: Encoded, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(data.input_ids[i]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        row = data.input_ids[i]
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.tensor([data.labels[i] for i in rows]),
    }


def build_model(recipe: Recipe, model_dir: Path) -> Any:
    """Base model with a fresh classification head, wrapped with the recipe's LoRA."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    labels = recipe.labels
    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=list(recipe.lora.target_modules),
        modules_to_save=list(recipe.lora.modules_to_save),
        layers_to_transform=recipe.lora.layers,
    )
    return get_peft_model(base, lora)


class _Replay:
    """Stands in for the embeddings + frozen bottom layers: returns their cached output."""

    def __init__(self, states: list[torch.Tensor], depth: int) -> None:
        self.states, self.depth, self.index = states, depth, 0

    def module(self) -> torch.nn.Module:
        import torch

        replay = self

        class Replay(torch.nn.Module):
            def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
                return replay.states[replay.index]

        return Replay()


def _backbone(model: Any) -> Any | None:
    """The encoder model (e.g. BertModel) when it has the usual embeddings + layer list."""
    hf = model.get_base_model()
    backbone = getattr(hf, getattr(hf, "base_model_prefix", ""), None)
    encoder = getattr(backbone, "encoder", None)
    if hasattr(backbone, "embeddings") and hasattr(encoder, "layer"):
        return backbone
    return None


def frozen_depth(backbone: Any) -> int:
    """How many bottom layers (after frozen embeddings) have nothing to train."""
    if any(p.requires_grad for p in backbone.embeddings.parameters()):
        return 0
    for index, layer in enumerate(backbone.encoder.layer):
        if any(p.requires_grad for p in layer.parameters()):
            return index
    return len(backbone.encoder.layer)


@contextmanager
def replay_frozen_prefix(model: Any, batches: list[dict], ctx: StageContext) -> Iterator[Any]:
    """Compute the frozen bottom of the network once per batch, then train only the top.

    With LoRA on the top layers only (recipe lora.layers), every epoch would otherwise
    recompute identical activations below them. Yields None when nothing is frozen.
    """
    import torch

    backbone = _backbone(model)
    depth = frozen_depth(backbone) if backbone is not None else 0
    if depth == 0:
        yield None
        return
    layers, embeddings = backbone.encoder.layer, backbone.embeddings
    ctx.progress(f"computing the {depth} frozen layers once")
    model.eval()
    backbone.encoder.layer = layers[:depth]
    try:
        with torch.no_grad():
            states = [backbone(**_features(b)).last_hidden_state for b in batches]
        replay = _Replay(states, depth)
        backbone.encoder.layer, backbone.embeddings = layers[depth:], replay.module()
        model.train()
        yield replay
    finally:
        backbone.encoder.layer, backbone.embeddings = layers, embeddings


def _features(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "labels"}


def train(model: Any, data: Encoded, recipe: Recipe, pad_id: int, ctx: StageContext) -> dict:
    """AdamW with linear warmup/decay over length-bucketed batches in seeded order."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    cfg = recipe.training
    batches = [collate(data, rows, pad_id) for rows in length_buckets(
        [len(r) for r in data.input_ids], cfg.batch_size)]  # fmt: skip
    total = max(1, math.ceil(cfg.epochs * len(batches)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP_FRACTION * total), total)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    weights = torch.ones(len(recipe.labels))
    weights[recipe.labels.index(recipe.positive_label)] = cfg.positive_weight
    started, cpu_started = time.perf_counter(), time.process_time()
    step, losses, shown = 0, [], 0.0
    with replay_frozen_prefix(model, batches, ctx) as replay:
        model.train()
        while step < total:
            for b in torch.randperm(len(batches), generator=order_rng).tolist():
                if step == total:
                    break
                if replay is not None:
                    replay.index = b
                logits = model(**_features(batches[b])).logits
                loss = torch.nn.functional.cross_entropy(logits, batches[b]["labels"], weights)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step, losses = step + 1, [*losses[-49:], loss.item()]
                if time.perf_counter() - shown > PROGRESS_EVERY_S or step == total:
                    shown = time.perf_counter()
                    epoch = min(cfg.epochs, step / len(batches))
                    ctx.progress(
                        f"epoch {epoch:.2f}/{cfg.epochs:g}  step {step}/{total}  "
                        f"loss {sum(losses) / len(losses):.4f}"
                    )
        frozen = replay.depth if replay is not None else 0
    return {
        "steps": total,
        "epochs": cfg.epochs,
        "examples": len(data.labels),
        "final_loss": sum(losses) / len(losses),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "replayed_frozen_layers": frozen,
    }


def predict(model: Any, data: Encoded, batch_size: int, pad_id: int) -> list[int]:
    """Argmax class per row, in the order of `data`."""
    import torch

    model.eval()
    predictions = [0] * len(data.labels)
    with torch.inference_mode():
        for rows in length_buckets([len(r) for r in data.input_ids], batch_size):
            batch = collate(data, rows, pad_id)
            batch.pop("labels")
            logits = model(**batch).logits
            for i, label in zip(rows, logits.argmax(-1).tolist(), strict=True):
                predictions[i] = label
    return predictions


def evaluate(model: Any, data: Encoded, recipe: Recipe, pad_id: int) -> dict:
    predicted = predict(model, data, max(64, recipe.training.batch_size), pad_id)
    positive = recipe.labels.index(recipe.positive_label)
    return classification_metrics(data.labels, predicted, positive)


def save(model: Any, tokenizer: Any, recipe: Recipe, out: Path) -> None:
    """adapter/ (public, small) and _merged/ (private: what export loads)."""
    model.peft_config["default"].base_model_name_or_path = recipe.model
    model.save_pretrained(out / "adapter", save_embedding_layers=False)
    tokenizer.save_pretrained(out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "_merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "_merged")


def _seed_everything(seed: int, threads: int | None) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or os.cpu_count() or 1)


def run(ctx: StageContext) -> dict:
    offline()
    import torch
    from transformers import AutoTokenizer

    recipe = ctx.recipe
    source = resolve_model(recipe)
    _seed_everything(recipe.training.seed, recipe.training.threads)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        ctx.progress(f"loading {recipe.model}")
        tokenizer = AutoTokenizer.from_pretrained(source.path)
        model = build_model(recipe, source.path)
        max_len = recipe.training.max_length
        train_data = encode(tokenizer, load_split(recipe, "train"), recipe.labels, max_len)
        eval_data = encode(tokenizer, load_split(recipe, "eval"), recipe.labels, max_len)
        pad_id = tokenizer.pad_token_id or 0
        trained = train(model, train_data, recipe, pad_id, ctx)
        ctx.progress("evaluating")
        fp32 = evaluate(model, eval_data, recipe, pad_id)
        trainable, total = model.get_nb_trainable_parameters()
        save(model, tokenizer, recipe, ctx.out)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return {
        "fp32": fp32,
        "train": trained,
        "model": source.fingerprint,
        "trainable_params": trainable,
        "total_params": total,
        "threads": torch.get_num_threads(),
    }


STAGE = Stage(
    name="finetune",
    run=run,
    recipe_fields=("model", "task", "labels", "positive_label", "lora", "training"),
    data_splits=("train", "eval"),
    packages=("torch", "transformers", "peft", "tokenizers"),
)
