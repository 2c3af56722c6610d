"""Weight-only INT8/INT4 for a decoder: ONNX Runtime's MatMulNBits quantizer, and the two
figures that gate it against FP32.

Round-to-nearest blocks along each weight's input axis: every MatMul with a constant
weight becomes one MatMulNBits node, the embedding table stays float. No calibration data
is needed. Its accuracy level 4 lets the CPU kernels quantize activations to INT8 per
block on the fly, which is what makes them faster than FP32 rather than slower
(benchmarks/llm_decode.py; docs/decisions/014-chat-llm-pipeline.md).

The gate's figures, both from eval conversations:
- perplexity over the assistant tokens (teacher forcing, one pass per conversation);
- greedy-token agreement: FP32 decodes `new_tokens` greedily from each eval prompt; the
  variant, fed the same tokens, predicts each of them; the share it predicts alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.chat.decode import OnnxDecoder, log_softmax
from pipeline.chat.tokens import IGNORE, Encoded

BITS = {"int8": 8, "int4": 4}
EXTERNAL_DATA_BYTES = 2**31 - 2**20
"""A protobuf cannot hold 2 GiB: larger models keep their weights beside the graph."""


def quantize(
    src: Path, dest: Path, bits: int, block_size: int, symmetric: bool, accuracy_level: int
) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size,
        is_symmetric=symmetric,
        bits=bits,
        accuracy_level=accuracy_level or None,
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    quantizer.process()
    large = quantizer.model.model.ByteSize() > EXTERNAL_DATA_BYTES
    quantizer.model.save_model_to_file(str(dest), use_external_data_format=large)


def perplexity(decoder: OnnxDecoder, data: list[Encoded]) -> float:
    """exp(mean NLL) over the labelled (assistant) tokens, each predicted from those before."""
    total, count = 0.0, 0
    for row in data:
        logprobs = log_softmax(decoder.logits(row.input_ids).astype(np.float64))
        for position in range(1, len(row.labels)):
            if row.labels[position] != IGNORE:
                total -= logprobs[position - 1, row.labels[position]]
                count += 1
    return math.exp(total / count)


@dataclass(frozen=True)
class Reference:
    """FP32's greedy continuation of each eval prompt: what variants must agree with."""

    prompts: list[list[int]]
    continuations: list[list[int]]


def reference(decoder: OnnxDecoder, prompts: list[list[int]], new_tokens: int) -> Reference:
    continuations = [decoder.greedy(p, new_tokens, stop=set()) for p in prompts]
    return Reference(prompts, continuations)


def agreement(decoder: OnnxDecoder, ref: Reference) -> float:
    """Share of FP32's greedy tokens that `decoder` predicts alike, fed the same tokens."""
    same = total = 0
    for prompt, continuation in zip(ref.prompts, ref.continuations, strict=True):
        logits = decoder.logits(prompt + continuation[:-1])
        predicted = logits[len(prompt) - 1 :].argmax(axis=-1)
        same += int((predicted == np.array(continuation)).sum())
        total += len(continuation)
    return same / total
