"""What a chat recipe's model folder must be: a causal LM of a family the build knows, with
a chat template (the tokenizer's or the recipe's). Checked from the files alone, before any
stage runs and without importing transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.chat.recipe import ChatRecipe
from pipeline.model_source import ModelSource, resolve_model
from router.errors import UserError

LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}
"""LoRA's default target modules per `model_type`: every linear layer of a decoder block."""
TEMPLATE_FILE = "chat_template.jinja"


def model_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def lora_targets(recipe: ChatRecipe, model_type: str) -> list[str]:
    if recipe.lora.target_modules is not None:
        return list(recipe.lora.target_modules)
    return LORA_TARGETS[model_type]


def tokenizer_template(folder: Path) -> str | None:
    """The chat template a tokenizer folder carries (transformers writes it to its own
    file since 4.43, older folders keep it in tokenizer_config.json)."""
    if (folder / TEMPLATE_FILE).is_file():
        return (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return template
    return None


def chat_template(recipe: ChatRecipe, folder: Path) -> str:
    """The recipe's template when it gives one, else the tokenizer's; UserError if neither."""
    path = recipe.template_path()
    if path is not None:
        if not path.is_file():
            raise UserError(f"{recipe.path}: chat_template: file not found: {path}")
        return path.read_text(encoding="utf-8")
    template = tokenizer_template(folder)
    if template is None:
        raise UserError(
            f"{recipe.path}: chat_template: the tokenizer in {folder} has no chat template; "
            "give one in the recipe (a Jinja file)"
        )
    return template


def check_causal_lm(recipe: ChatRecipe) -> ModelSource:
    """The model folder, refused unless it is a causal LM the build can adapt."""
    source = resolve_model(recipe)
    where = f"{recipe.path}: model: {source.path / 'config.json'}"
    try:
        config = model_config(source.path)
    except ValueError as exc:
        raise UserError(f"{where}: not valid JSON: {exc}") from None
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForCausalLM") for a in architectures):
        found = ", ".join(map(str, architectures)) or "none"
        raise UserError(f"{where}: architectures: {found} is not a causal LM (…ForCausalLM)")
    model_type = config.get("model_type")
    if recipe.lora.target_modules is None and model_type not in LORA_TARGETS:
        known = ", ".join(sorted(LORA_TARGETS))
        raise UserError(
            f"{where}: model_type: {model_type!r} has no default LoRA targets (known: {known}); "
            "set lora.target_modules in the recipe"
        )
    if not (source.path / "tokenizer.json").is_file():
        tokenizer = source.path / "tokenizer.json"
        raise UserError(f"{recipe.path}: model: {tokenizer}: file not found (a fast tokenizer)")
    chat_template(recipe, source.path)
    return source
