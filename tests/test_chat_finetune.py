"""finetune for chat recipes: the loss covers exactly the assistant turns (a property over
generated conversations), and the stage trains LoRA on a tiny Llama and Qwen2, writes the
adapter and merged weights, and reports eval loss and perplexity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.chat.data import Conversation, Message
from pipeline.chat.recipe import load_build_recipe
from pipeline.chat.tiny import CHATML, EOS, byte_tokenizer
from pipeline.chat.tokens import IGNORE, encode
from pipeline.runner import run_build
from pipeline.stages import chat_finetune
from pipeline.target import load_target
from tests.fixtures.tiny_chat import write_chat_recipe

TOKENIZER = byte_tokenizer()
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def conversations(draw) -> Conversation:
    turns = [Message("system", draw(text))] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        turns += [Message("user", draw(text)), Message("assistant", draw(text))]
    return tuple(turns)


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_labels_are_exactly_the_assistant_replies_and_their_end_marker(conversation):
    encoded = encode(TOKENIZER, CHATML, conversation, max_length=10_000)
    labelled = [t for t in encoded.labels if t != IGNORE]
    expected = "".join(m.content + EOS + "\n" for m in conversation if m.role == "assistant")
    assert TOKENIZER.decode(labelled) == expected
    kept = [
        t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE
    ]
    assert kept == labelled


def test_the_cut_keeps_labels_aligned():
    conversation = (Message("user", "x" * 50), Message("assistant", "y" * 50))
    encoded = encode(TOKENIZER, CHATML, conversation, max_length=60)
    assert len(encoded.input_ids) == len(encoded.labels) == 60
    assert TOKENIZER.decode([t for t in encoded.labels if t != IGNORE]).strip("y") == ""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_finetune_trains_the_assistant_turns(tmp_path, tiny_chat_models, family):
    recipe = load_build_recipe(write_chat_recipe(tmp_path, tiny_chat_models[family]))
    build = run_build(recipe, load_target("cpu"), out_root=tmp_path / "dist",
                      cache_root=tmp_path / "cache", stages=[chat_finetune.STAGE])  # fmt: skip
    metrics = build.stages[0].metrics
    assert metrics["eval"]["loss"] < metrics["base_eval"]["loss"]
    assert metrics["eval"]["perplexity"] == pytest.approx(2.718281828 ** metrics["eval"]["loss"])
    assert metrics["train"]["steps"] == len(metrics["train"]["loss_curve"]) == 16
    adapter = json.loads((build.dist / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) >= {"q_proj", "v_proj", "down_proj"}
    merged = build.stages[0].path / "_merged"
    assert (merged / "model.safetensors").is_file() and (merged / "chat_template.jinja").is_file()

    again = run_build(recipe, load_target("cpu"), out_root=tmp_path / "dist2",
                      cache_root=tmp_path / "cache2", stages=[chat_finetune.STAGE])  # fmt: skip
    assert again.stages[0].key == build.stages[0].key
    assert _digest(again.stages[0].path / "_merged" / "model.safetensors") == _digest(
        merged / "model.safetensors"
    )


def test_the_key_follows_the_recipe_template_file(tmp_path, tiny_chat_models):
    (tmp_path / "chatml.jinja").write_text(CHATML)
    path = write_chat_recipe(tmp_path, tiny_chat_models["llama"], chat_template="chatml.jinja")
    before = load_build_recipe(path).field("chat_template")
    (tmp_path / "chatml.jinja").write_text(CHATML.replace("\\n", " "))
    assert load_build_recipe(path).field("chat_template") != before
