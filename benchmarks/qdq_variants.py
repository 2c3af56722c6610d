"""Q/DQ placement and calibration variants on one export, every encoder layer INT8.

For each `calibration:attention` variant (calibration: minmax, entropy, percentile or
per-tensor; attention: `att` quantizes the attention MatMuls, `no` keeps them float) it
quantizes the export's model.onnx as the quantize stage does, without its accuracy gate,
and prints accuracy and agreement with FP32 (same argmax) on the recipe's eval split,
encoder layers left in float and size (docs/decisions/021-tensorrt-qdq-placement.md).

    .venv/bin/python benchmarks/qdq_variants.py .cache/edgepack/stages/export/KEY/onnx \\
        percentile:no,per-tensor:no,percentile:att,per-tensor:att
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT


def main() -> None:
    import numpy as np
    import onnx

    from pipeline.data import load_split
    from pipeline.quant import calibration, onnx_eval, qdq
    from pipeline.recipe import load_recipe
    from pipeline.scoring import classification_metrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export stage's onnx/ folder")
    parser.add_argument("variants", help="comma-separated calibration:att|no")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/sensitivity-minilm.yaml")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    tokenizer = onnx_eval.load_tokenizer(args.export)
    length = recipe.training.max_length
    examples = load_split(recipe, "eval")
    calib = calibration.pick_samples(
        [e.text for e in load_split(recipe, "calib")], recipe.quantize.samples
    )
    index = {label: i for i, label in enumerate(recipe.labels)}
    truth = [index[e.label] for e in examples]

    def predict(path: Path):
        session = onnx_eval.ort_session(path)
        texts = [e.text for e in examples]
        return onnx_eval.predict_logits(session, tokenizer, texts, length).argmax(axis=1)

    fp32 = predict(args.export / "model.onnx")
    print(f"| variant | {recipe.eval.metric} | agreement with FP32 | layers kept float | size |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="edgepack-qdq-variants-") as tmp:
        work = Path(tmp)
        pre = qdq.preprocess(args.export / "model.onnx", work / "pre.onnx")
        prepared = work / "prepared.onnx"
        for variant in args.variants.split(","):
            method, attention = variant.split(":")
            nodes = qdq.prepare_for_tensorrt(pre, prepared, False, attention == "att")
            cache = work / f"calib-{method}.json"
            if not cache.exists():
                calibration.calibrate(
                    prepared, tokenizer, calib, length, method, recipe.quantize.percentile,
                    qdq.OP_TYPES, cache,
                )  # fmt: skip
            out = work / f"{method}-{attention}.onnx"
            qdq.quantize_qdq(prepared, out, cache, calibration.calibrate_method(method), nodes)
            preds = predict(out)
            metric = classification_metrics(truth, preds.tolist(), index[recipe.positive_label])
            kept = qdq.float_blocks(onnx.load(str(out)))
            print(
                f"| {variant} | {100 * metric[recipe.eval.metric]:.1f} | "
                f"{100 * float(np.mean(preds == fp32)):.1f} | {len(kept)} {kept or ''} |"
                f" {out.stat().st_size / 1e6:.1f} MB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
