"""An ONNX Runtime GenAI folder from the exported (and quantized) decoder.

GenAI runs any decoder whose inputs and outputs its `genai_config.json` names; optimum's
export uses the names below, so the build's own validated model (FP32 or a MatMulNBits
variant) is what GenAI loads, not a second export by GenAI's model builder. The folder
holds the model, the tokenizer files GenAI reads, the chat template and `infer.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.chat.model import TEMPLATE_FILE

TEMPLATES = Path(__file__).resolve().parent / "templates"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MODEL_FILE = "model.onnx"
GENAI_CONFIG = "genai_config.json"


def genai_config(config: dict, eos: set[int], context_length: int, provider: str) -> dict:
    """genai_config.json for optimum's decoder export of a model with this config.json."""
    heads = config["num_attention_heads"]
    head_size = config.get("head_dim") or config["hidden_size"] // heads
    pad = config.get("pad_token_id")
    decoder = {
        "filename": MODEL_FILE,
        "session_options": {
            "log_id": "onnxruntime-genai",
            "provider_options": [] if provider == "cpu" else [{provider: {}}],
        },
        "head_size": head_size,
        "hidden_size": config["hidden_size"],
        "num_attention_heads": heads,
        "num_key_value_heads": config.get("num_key_value_heads") or heads,
        "num_hidden_layers": config["num_hidden_layers"],
        "inputs": {
            "input_ids": "input_ids",
            "attention_mask": "attention_mask",
            "position_ids": "position_ids",
            "past_key_names": "past_key_values.%d.key",
            "past_value_names": "past_key_values.%d.value",
        },
        "outputs": {
            "logits": "logits",
            "present_key_names": "present.%d.key",
            "present_value_names": "present.%d.value",
        },
    }
    eos_ids = sorted(eos)
    bos = config.get("bos_token_id")
    return {
        "model": {
            "type": config["model_type"],
            "vocab_size": config["vocab_size"],
            "context_length": context_length,
            "bos_token_id": eos_ids[0] if bos is None else bos,
            "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
            "pad_token_id": pad if pad is not None else eos_ids[0],
            "decoder": decoder,
        },
        "search": {
            "max_length": context_length,
            "do_sample": False,
            "num_beams": 1,
            "past_present_share_buffer": False,
        },
    }


def write_genai_folder(
    dest: Path, model: Path, tokenizer_dir: Path, config: dict, eos: set[int], provider: str
) -> Path:
    """dest/ with model.onnx (+ external data), genai_config.json, tokenizer, template and
    infer.py; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model, dest / MODEL_FILE)
    for data in model.parent.glob(f"{model.name}.data"):
        shutil.copy2(data, dest / data.name)
    for name in (*TOKENIZER_FILES, TEMPLATE_FILE):
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, dest / name)
    context = int(config.get("max_position_embeddings") or 2048)
    text = json.dumps(genai_config(config, eos, context, provider), indent=2) + "\n"
    (dest / GENAI_CONFIG).write_text(text)
    shutil.copy2(TEMPLATES / "infer.py", dest / "infer.py")
    return dest
