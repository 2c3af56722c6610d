"""Greedy decoding and token scoring with an exported decoder in ONNX Runtime, and the
PyTorch reference it is checked against.

The ONNX model is optimum's `text-generation-with-past` export: inputs `input_ids`,
`attention_mask`, (`position_ids`), `past_key_values.<i>.key|value`; outputs `logits` and
`present.<i>.key|value`. Incremental decoding feeds the presents back as the next pasts, so
the check covers the KV-cache path that serving uses, not only a full-sequence pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

PAST = "past_key_values."


def stop_ids(model_dir: Path) -> set[int]:
    """The tokens that end a reply: generation_config.json's eos ids, else config.json's."""
    for name in ("generation_config.json", "config.json"):
        path = model_dir / name
        eos = json.loads(path.read_text()).get("eos_token_id") if path.is_file() else None
        if eos is not None:
            return set(eos) if isinstance(eos, list) else {int(eos)}
    return set()


class OnnxDecoder:
    """One ONNX Runtime session over a decoder with KV cache, batch 1."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # one request at a time: idle workers spinning between steps only steal CPU
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self.names = {i.name for i in inputs}
        self.pasts = [(i.name, i.shape) for i in inputs if i.name.startswith(PAST)]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def empty_past(self) -> dict[str, np.ndarray]:
        """Zero-length caches, shaped [1, kv_heads, 0, head_dim] from the model's inputs."""
        return {
            name: np.zeros((1, shape[1], 0, shape[3]), dtype=np.float32)
            for name, shape in self.pasts
        }

    def step(self, ids: list[int], past: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """Logits [len(ids), vocab] for `ids` after the cached tokens, and the new cache."""
        done = next(iter(past.values())).shape[2] if past else 0
        feed = {"input_ids": np.array([ids], dtype=np.int64), **past}
        feed["attention_mask"] = np.ones((1, done + len(ids)), dtype=np.int64)
        if "position_ids" in self.names:
            feed["position_ids"] = np.arange(done, done + len(ids), dtype=np.int64)[None]
        results = dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))
        present = {name: results[name.replace(PAST, "present.")] for name, _shape in self.pasts}
        return results["logits"][0], present

    def greedy(self, prompt: list[int], new_tokens: int, stop: set[int]) -> list[int]:
        """Up to `new_tokens` argmax tokens after `prompt`, one step each on the KV cache."""
        logits, past = self.step(prompt, self.empty_past())
        out: list[int] = []
        while len(out) < new_tokens:
            token = int(np.argmax(logits[-1]))
            out.append(token)
            if token in stop:
                break
            logits, past = self.step([token], past)
        return out

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits for every position of `ids` in one pass (teacher forcing)."""
        return self.step(ids, self.empty_past())[0]


def torch_greedy(model: Any, prompt: list[int], new_tokens: int, stop: set[int]) -> list[int]:
    """transformers' own greedy search, every sampling or penalty setting of the model's
    generation_config overridden, so both sides run plain argmax decoding."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=sorted(stop) or None,
        pad_token_id=min(stop) if stop else 0,
    )
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        generated = model.generate(
            ids, attention_mask=torch.ones_like(ids), generation_config=config
        )
    return generated[0, len(prompt) :].tolist()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def decode_speed(
    models: dict[str, Path], prompt: list[int], new_tokens: int, rounds: int, threads: int = 1
) -> dict[str, float]:
    """Median greedy decode tokens/s per model (after the prompt), `rounds` interleaved
    rounds so that a load change on the host hits every model alike."""
    import statistics
    import time

    decoders = {name: OnnxDecoder(path, threads=threads) for name, path in models.items()}
    for decoder in decoders.values():  # warm-up: first-run allocations
        decoder.greedy(prompt, 2, stop=set())
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(rounds):
        for name, decoder in decoders.items():
            _logits, past = decoder.step(prompt, decoder.empty_past())
            token = int(np.argmax(_logits[-1]))
            started = time.perf_counter()
            for _step in range(new_tokens):
                logits, past = decoder.step([token], past)
                token = int(np.argmax(logits[-1]))
            times[name].append(time.perf_counter() - started)
    return {name: new_tokens / statistics.median(t) for name, t in times.items()}
