"""finetune internals on a tiny random BERT: batching, frozen-prefix replay, LoRA layers."""

from __future__ import annotations

import pytest
import torch

from pipeline import vocabulary
from pipeline.data import load_split
from pipeline.recipe import load_recipe
from pipeline.stage import StageContext
from pipeline.stages import finetune
from pipeline.target import load_target
from tests.fixtures.recipes import write_recipe


def test_length_buckets_cover_every_row_once_and_sort_by_length():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = finetune.length_buckets(lengths, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [[lengths[i] for i in b] for b in batches] == [[1, 2, 3], [3, 5, 7], [9]]


def test_collate_pads_to_the_longest_row_only():
    data = finetune.Encoded(input_ids=[[101, 7, 102], [101, 102]], labels=[1, 0])
    batch = finetune.collate(data, [0, 1], pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_replayed_prefix_gives_the_same_loss_as_the_full_model(tmp_path, tiny_bert_dir):
    """Training the top layer on cached bottom activations is the same function."""
    from transformers import AutoTokenizer

    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"],
            "layers": [1]}  # fmt: skip
    recipe = load_recipe(write_recipe(tmp_path, tiny_bert_dir, lora=lora))
    torch.manual_seed(0)
    model = finetune.build_model(recipe, tiny_bert_dir)
    assert finetune.frozen_depth(finetune._backbone(model)) == 1
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    data = finetune.encode(tokenizer, load_split(recipe, "train"), recipe.labels, 32)
    batches = [finetune.collate(data, rows, 0) for rows in finetune.length_buckets(
        [len(r) for r in data.input_ids], 8)]  # fmt: skip
    ctx = StageContext(recipe, load_target("cpu"), tmp_path, {}, {}, tmp_path, note=print)
    model.eval()
    with torch.no_grad():
        full = [model(**b).loss.item() for b in batches]
    with finetune.replay_frozen_prefix(model, batches, ctx) as replay:
        assert replay is not None and replay.depth == 1
        model.eval()
        replayed = []
        for index, batch in enumerate(batches):
            replay.index = index
            with torch.no_grad():
                replayed.append(model(**batch).loss.item())
    assert replayed == pytest.approx(full, abs=1e-6)
    with torch.no_grad():  # modules restored afterwards
        assert [model(**b).loss.item() for b in batches] == pytest.approx(full, abs=1e-6)


def test_all_layers_adapted_means_no_replay(tmp_path, tiny_bert_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_bert_dir))
    model = finetune.build_model(recipe, tiny_bert_dir)
    assert finetune.frozen_depth(finetune._backbone(model)) == 0
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("layer.0." in n and "lora_A" in n for n in names)
    assert any("classifier" in n for n in names)


def _vocabulary_phase_moves(tmp_path, model_dir, phase: dict) -> tuple[float, float]:
    """How far the vocabulary phase moves the old and the added embedding rows."""
    from transformers import AutoTokenizer

    training = {"epochs": 1, "learning_rate": 0.001, "batch_size": 8, "max_length": 32,
                "seed": 7, "threads": 1, "vocabulary": phase}  # fmt: skip
    recipe = load_recipe(write_recipe(tmp_path, model_dir, training=training))
    torch.manual_seed(0)
    model = finetune.build_model(recipe, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = load_split(recipe, "train")
    added = vocabulary.missing_characters(tokenizer, [e.text for e in examples])
    old = vocabulary.extend(tokenizer, model, added)
    assert added and old < len(tokenizer)
    data = finetune.encode(tokenizer, examples, recipe.labels, 32)
    before = model.get_input_embeddings().weight.detach().clone()
    ctx = StageContext(recipe, load_target("cpu"), tmp_path, {}, {}, tmp_path, note=print)
    assert finetune.train_new_rows(model, data, old, recipe, 0, ctx) is not None
    after = model.get_input_embeddings().weight.detach()
    return float((after[:old] - before[:old]).abs().max()), float(
        (after[old:] - before[old:]).abs().mean()
    )


def test_vocabulary_phase_trains_added_rows_only_at_their_own_rate(tmp_path, tiny_bert_dir):
    shared_old, shared_new = _vocabulary_phase_moves(tmp_path / "a", tiny_bert_dir, {})
    own_old, own_new = _vocabulary_phase_moves(
        tmp_path / "b", tiny_bert_dir, {"windows": 4, "tokens": 8, "learning_rate": 0.05}
    )
    assert shared_old == 0.0 and own_old == 0.0  # the base vocabulary never moves
    assert shared_new > 0.0
    assert own_new > 10 * shared_new  # 50x the rate, fewer steps: still far further
