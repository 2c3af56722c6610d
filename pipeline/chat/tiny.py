"""Tiny causal LMs with fixed-seed random weights, for the example recipe and the tests.

They demonstrate the pipeline, not a useful chat model: a byte-level tokenizer (256 byte
tokens plus ChatML's specials, no merges, so nothing is trained or downloaded) and two
decoder blocks of a real family's architecture (GQA included). Make the example's folder:

    python -m pipeline.chat.tiny recipes/examples/models/tiny-chat --family llama
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FAMILIES = ("llama", "qwen2", "mistral", "phi3")
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
EOS, PAD, START = "<|im_end|>", "<|endoftext|>", "<|im_start|>"
SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


def byte_tokenizer(chat_template: str | None = CHATML) -> Any:
    """A byte-level BPE with no merges: every UTF-8 byte is a token, like GPT-2's alphabet."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[START],
        chat_template=chat_template,
    )


def tiny_causal_lm(family: str, tokenizer: Any, seed: int = 0) -> Any:
    """A random 2-block decoder of `family` sized to the tokenizer, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: one of {', '.join(FAMILIES)}")
    config = AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **SHAPE,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def make_tiny_chat_model(
    folder: Path, family: str = "llama", seed: int = 0, chat_template: str | None = CHATML
) -> Path:
    """The model and its tokenizer saved as a Hugging Face folder; returns `folder`."""
    tokenizer = byte_tokenizer(chat_template)
    model = tiny_causal_lm(family, tokenizer, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--family", choices=FAMILIES, default="llama")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_tiny_chat_model(args.folder, args.family, args.seed)
    print(f"wrote a tiny random {args.family} chat model to {args.folder}")


if __name__ == "__main__":
    main()
