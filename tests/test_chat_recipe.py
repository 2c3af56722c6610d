"""`task: text-generation` recipes: bad input fails before any stage runs, in one line that
names the file and the field (the real CLI entry point, as in test_recipe_errors.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.cache_key import build_key
from pipeline.chat.recipe import ChatRecipe, load_build_recipe
from pipeline.recipe import Recipe
from pipeline.runner import STAGES, stages_for
from pipeline.target import load_target
from tests.fixtures.tiny_chat import write_chat_recipe, write_conversations
from tests.fixtures.tiny_model import make_tiny_model
from tests.test_recipe_errors import assert_one_line_error, build_error

REPO = Path(__file__).resolve().parent.parent


def test_task_picks_the_schema_and_the_stages():
    example = load_build_recipe(REPO / "recipes" / "examples" / "tiny-chat.yaml")
    classifier = load_build_recipe(REPO / "recipes" / "sensitivity-minilm.yaml")
    assert isinstance(example, ChatRecipe) and example.served_name == "tiny-chat"
    assert isinstance(classifier, Recipe)
    assert stages_for(classifier) == list(STAGES)
    cpu = load_target("cpu")
    assert build_key(stages_for(classifier), classifier, cpu) == build_key(STAGES, classifier, cpu)
    assert example.data_path("train").is_file()


def test_chat_recipe_schema_errors_name_the_field(monkeypatch, capsys, tmp_path):
    path = write_chat_recipe(tmp_path, tmp_path / "m", quantize={"block_size": 48})
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(err, str(path), "quantize.block_size", "power of two")


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ({"text": "hi", "label": "public"}, ["messages: missing"]),
        ({"messages": [{"role": "user", "content": "hi"}]}, ["messages: no assistant turn"]),
        ({"messages": [{"role": "bot", "content": "hi"}]}, ["messages[0].role", "'bot'"]),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
            ["messages[1].content"],
        ),
        (
            {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]},
            ["messages[1].role", "last turn"],
        ),
    ],
)
def test_bad_chat_data_fails_before_any_stage(
    monkeypatch, capsys, tmp_path, tiny_chat_models, line, fragments
):
    path = write_chat_recipe(tmp_path, tiny_chat_models["llama"])
    with (tmp_path / "data" / "eval.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(err, f"{tmp_path / 'data' / 'eval.jsonl'}:5:", *fragments)
    assert not (tmp_path / ".cache").exists()


def test_empty_split_names_the_recipe_field(monkeypatch, capsys, tmp_path, tiny_chat_models):
    path = write_chat_recipe(tmp_path, tiny_chat_models["qwen2"])
    write_conversations(tmp_path / "data" / "calib.jsonl", [])
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(err, str(path), "data.calib", "empty")


def test_a_tokenizer_without_chat_template_is_refused_unless_the_recipe_gives_one(
    monkeypatch, capsys, tmp_path, tiny_chat_models
):
    model = shutil.copytree(tiny_chat_models["llama"], tmp_path / "model")
    (model / "chat_template.jinja").unlink()
    path = write_chat_recipe(tmp_path, model)
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(err, str(path), "chat_template", "no chat template")

    given = write_chat_recipe(tmp_path, model, name="given.yaml", chat_template="missing.jinja")
    err = build_error(monkeypatch, capsys, given)
    assert_one_line_error(err, str(given), "chat_template: file not found")


def test_a_model_that_is_not_a_causal_lm_is_refused(monkeypatch, capsys, tmp_path):
    bert = make_tiny_model(tmp_path / "bert", labels=("a", "b"))
    path = write_chat_recipe(tmp_path, bert)
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(
        err, str(path), "model:", "architectures", "BertForSequenceClassification", "causal LM"
    )


def test_an_unknown_family_needs_target_modules(monkeypatch, capsys, tmp_path, tiny_chat_models):
    model = shutil.copytree(tiny_chat_models["llama"], tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    path = write_chat_recipe(tmp_path, model)
    err = build_error(monkeypatch, capsys, path)
    assert_one_line_error(err, "model_type", "gpt_neox", "lora.target_modules")
