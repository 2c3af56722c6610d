"""Chat with the model in this folder through ONNX Runtime GenAI (greedy decoding).

pip install onnxruntime-genai          # onnxruntime-genai-cuda where a GPU is
python infer.py                        # interactive: one user turn per line
python infer.py --prompt "Hello" --json    # one reply as JSON (text and token ids)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnxruntime_genai as og

HERE = Path(__file__).resolve().parent


def reply(model, tokenizer, template: str, messages: list[dict], max_new_tokens: int):
    """Greedy tokens after the chat template's rendering of `messages`, and their text."""
    prompt = tokenizer.apply_chat_template(
        json.dumps(messages), template_str=template, add_generation_prompt=True
    )
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    tokens = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    end = set(tokenizer.eos_token_ids)
    text = tokenizer.decode([t for t in tokens if t not in end])
    return tokens, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", help="one user turn; without it, chat on stdin")
    parser.add_argument("--system", help="a system turn before the conversation")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="print {text, tokens}")
    args = parser.parse_args()
    model = og.Model(str(HERE))
    tokenizer = og.Tokenizer(model)
    template = (HERE / "chat_template.jinja").read_text(encoding="utf-8")
    messages = [{"role": "system", "content": args.system}] if args.system else []
    turns = [args.prompt] if args.prompt is not None else (line.rstrip("\n") for line in sys.stdin)
    for turn in turns:
        messages.append({"role": "user", "content": turn})
        tokens, text = reply(model, tokenizer, template, messages, args.max_new_tokens)
        messages.append({"role": "assistant", "content": text})
        print(json.dumps({"text": text, "tokens": tokens}) if args.json else text, flush=True)


if __name__ == "__main__":
    main()
