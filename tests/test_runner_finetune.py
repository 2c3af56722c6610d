"""finetune internals on a tiny random BERT: batching, frozen-prefix replay, LoRA layers."""

from __future__ import annotations

import pytest
import torch

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
