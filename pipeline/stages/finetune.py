"""finetune: peft LoRA on the recipe's train split → adapter/, _merged/, eval metrics.

A plain torch loop rather than HF Trainer: on a 2-core CPU the wins are dynamic padding
and length-bucketed batches (most prompts are short), which a dozen lines do directly.
Deterministic for a given seed, thread count and CPU instruction set (MKL and ATen pick
kernels by it, and their rounding differs): seeded init, dropout and batch order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import operating_point, vocabulary
from pipeline.data import Example, load_split
from pipeline.model_source import offline, resolve_model
from pipeline.recipe import Recipe
from pipeline.seeding import deterministic
from pipeline.stage import Stage, StageContext
from pipeline.windows import max_per_text, windows

if TYPE_CHECKING:
    import torch

WARMUP_FRACTION = 0.06
ADDED_ROWS_FILE = "added_token_embeddings.safetensors"
TEMPLATE_SUBSET = "template"
"""The eval rows the threshold is chosen on (rows without a subset count as these)."""
PROGRESS_EVERY_S = 1.0


@dataclass
class Encoded:
    """Tokenized split as windows, unpadded; batches are padded to their own longest row."""

    input_ids: list[list[int]]
    labels: list[int]
    owners: list[int] = field(default_factory=list)
    """Index of the example each window came from (a long text gives several)."""


def encode(tokenizer: Any, examples: list[Example], labels: list[str], max_length: int) -> Encoded:
    """Every window of every example (`pipeline.windows`), labelled with its example's label.

    The data set's long texts are one kind throughout (a long memo confidential in every
    paragraph, a long article public in all), so each window carries its text's label.
    """
    ids, owners = windows(tokenizer, [e.text for e in examples], max_length)
    return Encoded(ids, [labels.index(examples[o].label) for o in owners], owners)


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


def train(
    model: Any,
    data: Encoded,
    recipe: Recipe,
    pad_id: int,
    ctx: StageContext,
    epochs: float | None = None,
    weight_decay: float = 0.01,
    embedding_lr: float | None = None,
) -> dict:
    """AdamW with linear warmup/decay over length-bucketed batches in seeded order
    (`epochs`: the recipe's unless given; `embedding_lr`: the input embeddings' own rate)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    cfg = recipe.training
    epochs = cfg.epochs if epochs is None else epochs
    batches = [collate(data, rows, pad_id) for rows in length_buckets(
        [len(r) for r in data.input_ids], cfg.batch_size)]  # fmt: skip
    total = max(1, math.ceil(epochs * len(batches)))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": params}]
    if embedding_lr is not None:
        embeddings = model.get_input_embeddings().weight
        groups = [{"params": [p for p in params if p is not embeddings]},
                  {"params": [embeddings], "lr": embedding_lr}]  # fmt: skip
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=weight_decay)
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
                    epoch = min(epochs, step / len(batches))
                    ctx.progress(
                        f"epoch {epoch:.2f}/{epochs:g}  step {step}/{total}  "
                        f"loss {sum(losses) / len(losses):.4f}"
                    )
        frozen = replay.depth if replay is not None else 0
    return {
        "steps": total,
        "epochs": epochs,
        "examples": len(data.labels),
        "final_loss": sum(losses) / len(losses),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "replayed_frozen_layers": frozen,
    }


def train_new_rows(
    model: Any, data: Encoded, old_vocab: int, recipe: Recipe, pad_id: int, ctx: StageContext
) -> dict | None:
    """A first, short phase for the added characters' embeddings (`pipeline.vocabulary`).

    Training embeddings means back-propagating through every layer, which the replay of the
    frozen bottom layers avoids and which costs several times a replayed step; so this
    phase is bounded (recipe `training.vocabulary`): a spread of the windows that contain
    an added character, each cut to its first tokens, one epoch, at the rows' own learning
    rate (a fresh embedding has far to go in few steps). The recipe's epochs then run with
    the embeddings frozen (and replayed).
    """
    phase = recipe.training.vocabulary
    rows = [i for i, ids in enumerate(data.input_ids) if max(ids) >= old_vocab]
    if not rows:
        return None
    step = max(1, len(rows) // phase.windows)
    rows = rows[::step][: phase.windows]
    cut = [data.input_ids[i][: phase.tokens - 1] + data.input_ids[i][-1:] for i in rows]
    subset = Encoded(cut, [data.labels[i] for i in rows])
    ctx.progress(f"training the embeddings of added characters on {len(rows)} windows")
    with vocabulary.new_rows_trainable(model, old_vocab):
        return train(model, subset, recipe, pad_id, ctx, epochs=1, weight_decay=0.0,
                     embedding_lr=phase.learning_rate)  # fmt: skip


def predict(model: Any, data: Encoded, batch_size: int, pad_id: int, positive: int) -> list[float]:
    """P(positive) per window, in the order of `data`."""
    import torch

    model.eval()
    scores = [0.0] * len(data.labels)
    with torch.inference_mode():
        for rows in length_buckets([len(r) for r in data.input_ids], batch_size):
            batch = collate(data, rows, pad_id)
            batch.pop("labels")
            probs = model(**batch).logits.softmax(-1)[:, positive]
            for i, p in zip(rows, probs.tolist(), strict=True):
                scores[i] = p
    return scores


def text_scores(model: Any, data: Encoded, texts: int, recipe: Recipe, pad_id: int):
    """P(positive) of each of the `texts` encoded in `data`: its highest window's."""
    positive = recipe.labels.index(recipe.positive_label)
    windows_p = predict(model, data, max(64, recipe.training.batch_size), pad_id, positive)
    return max_per_text(windows_p, data.owners, texts)


def evaluate(model: Any, data: Encoded, examples: list[Example], recipe: Recipe, pad_id: int):
    """Each eval text's score (its highest window), the operating point chosen on the rows
    of the template subset (the others are held out of every choice), metrics there."""
    positive = recipe.labels.index(recipe.positive_label)
    scores = text_scores(model, data, len(examples), recipe, pad_id)
    chosen = [i for i, e in enumerate(examples) if e.subset in ("", TEMPLATE_SUBSET)]
    threshold = operating_point.choose(
        [scores[i] for i in chosen],
        [examples[i].label == recipe.positive_label for i in chosen],
        recipe.eval.min_recall,
    )
    y_true = [recipe.labels.index(e.label) for e in examples]
    return {
        "threshold": threshold,
        "min_recall": recipe.eval.min_recall,
        "all": operating_point.metrics_at(scores, y_true, positive, threshold),
        "subsets": operating_point.report(
            scores, examples, recipe.labels, recipe.positive_label, threshold
        ),
    }


def save(
    model: Any, tokenizer: Any, recipe: Recipe, out: Path, point: dict, base_vocab: int
) -> None:
    """adapter/ (public, small) and _merged/ (private: what export loads), the operating
    point in the merged model's config.json (the export carries it into onnx/)."""
    model.peft_config["default"].base_model_name_or_path = recipe.model
    model.save_pretrained(out / "adapter", save_embedding_layers=False)
    tokenizer.save_pretrained(out / "adapter")
    _save_added_rows(model, base_vocab, out / "adapter")
    merged = model.merge_and_unload()
    merged.config.update({operating_point.KEY: point})
    merged.save_pretrained(out / "_merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "_merged")


def _save_added_rows(model: Any, base_vocab: int, folder: Path) -> None:
    """The embeddings of added tokens, which the adapter alone does not hold."""
    from safetensors.torch import save_file

    weight = model.get_input_embeddings().weight
    if weight.shape[0] > base_vocab:
        rows = weight[base_vocab:].detach().contiguous()
        save_file({"added_token_embeddings": rows}, str(folder / ADDED_ROWS_FILE))


def run(ctx: StageContext) -> dict:
    offline()
    import torch
    from transformers import AutoTokenizer

    recipe = ctx.recipe
    source = resolve_model(recipe)
    with deterministic(recipe.training.seed, recipe.training.threads):
        ctx.progress(f"loading {recipe.model}")
        tokenizer = AutoTokenizer.from_pretrained(source.path)
        model = build_model(recipe, source.path)
        train_set = load_split(recipe, "train")
        added = vocabulary.missing_characters(tokenizer, [e.text for e in train_set])
        old_vocab = vocabulary.extend(tokenizer, model, added)
        max_len = recipe.training.max_length
        train_data = encode(tokenizer, train_set, recipe.labels, max_len)
        eval_set = load_split(recipe, "eval")
        eval_data = encode(tokenizer, eval_set, recipe.labels, max_len)
        pad_id = tokenizer.pad_token_id or 0
        words = train_new_rows(model, train_data, old_vocab, recipe, pad_id, ctx)
        trained = train(model, train_data, recipe, pad_id, ctx)
        ctx.progress("evaluating")
        evaluated = evaluate(model, eval_data, eval_set, recipe, pad_id)
        trainable, total = model.get_nb_trainable_parameters()
        point = {"threshold": evaluated["threshold"], "min_recall": recipe.eval.min_recall}
        save(model, tokenizer, recipe, ctx.out, point, old_vocab)
    ctx.note(_summary(evaluated))
    return {
        "fp32": evaluated["all"],
        "threshold": evaluated["threshold"],
        "min_recall": evaluated["min_recall"],
        "subsets": evaluated["subsets"],
        "train": trained,
        "vocabulary": {"added_characters": len(added), "phase": words},
        "model": source.fingerprint,
        "trainable_params": trainable,
        "total_params": total,
        "threads": torch.get_num_threads(),
    }


def _summary(evaluated: dict) -> str:
    """One line: the threshold and, per eval subset, recall / precision (where it has
    confidential rows) / false alarms."""
    parts = [f"threshold {evaluated['threshold']:.4f} (recall >= {evaluated['min_recall']})"]
    for name, by_lang in evaluated["subsets"].items():
        m = by_lang["all"]
        caught = ""
        if m["positives"]:
            caught = f"recall {m['recall']:.3f} precision {m['precision']:.3f} "
        parts.append(f"{name}: {caught}false alarms {m['false_alarm_rate']:.3f}")
    return "; ".join(parts)


STAGE = Stage(
    name="finetune",
    run=run,
    recipe_fields=(
        "model",
        "task",
        "labels",
        "positive_label",
        "lora",
        "training",
        "eval.min_recall",
    ),
    data_splits=("train", "eval"),
    packages=("torch", "transformers", "peft", "tokenizers"),
)
