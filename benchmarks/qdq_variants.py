"""Q/DQ placement and calibration variants on one export, every encoder layer INT8.

For each `calibration:attention[:sALPHA][:fUNIT]` variant (calibration: minmax, entropy,
percentile or per-tensor; attention: `att` quantizes the attention MatMuls, `no` keeps them
float; `si0.5`: SmoothQuant-style smoothing with α = 0.5 first, as the stage smooths, `s0.5`
at the LayerNorms only; `flayer.5`: that unit of the
gate's, `qdq.sensitivity_units`, kept float) it quantizes the export's model.onnx
as the quantize stage does, without its accuracy gate, and prints the recipe's metric and
agreement with FP32 (same decision) on the eval split, both at the export's operating
point as the gate scores them, the mean shift of P(positive) from FP32's on eval and on the
calib rows calibration did not use (what to choose a setting on), encoder layers left in
float and size (docs/decisions/007-tensorrt-qdq-placement.md).

    .venv/bin/python benchmarks/qdq_variants.py .cache/edgepack/stages/export/KEY/onnx \\
        percentile:no,per-tensor:no,percentile:att,per-tensor:att,percentile:att:s0.5,\
        percentile:att:flayer.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import gate_scoring
from benchmarks.common import ROOT, loadavg


def main() -> None:
    import onnx

    from pipeline.data import load_split
    from pipeline.quant import calibration, onnx_eval, qdq, smoothing
    from pipeline.recipe import load_recipe

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export stage's onnx/ folder")
    parser.add_argument("variants", help="comma-separated calibration:att|no[:sALPHA]")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/sensitivity-minilm.yaml")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    tokenizer = onnx_eval.load_tokenizer(args.export)
    length, metric = recipe.training.max_length, recipe.eval.metric
    calib_split = load_split(recipe, "calib")
    calib = calibration.pick_samples([e.text for e in calib_split], recipe.quantize.samples)
    used = set(calib)
    held_out = [e for e in calib_split if e.text not in used]  # what to choose a setting on
    threshold, score = gate_scoring.scorer(recipe, args.export, load_split(recipe, "eval"))
    _, score_held_out = gate_scoring.scorer(recipe, args.export, held_out)
    fp32 = score(args.export / "model.onnx")[0]
    fp32_held_out = score_held_out(args.export / "model.onnx")[0]

    def row(name: str, path: Path, kept: str) -> None:
        scores, found = score(path)
        same = gate_scoring.agreement(scores, fp32, threshold)
        shift = gate_scoring.mean_shift(scores, fp32)
        calib_shift = gate_scoring.mean_shift(score_held_out(path)[0], fp32_held_out)
        print(f"| {name} | {100 * found[metric]:.1f} | {same:.1f} | {shift:.4f} |"
              f" {calib_shift:.4f} | {kept} | {path.stat().st_size / 1e6:.1f} MB |",
              flush=True)  # fmt: skip

    print(f"threshold {threshold:.4f}; {len(held_out)} calib rows held out of calibration;"
          f" loadavg {loadavg()}")  # fmt: skip
    print(f"| variant | {metric} | agreement with FP32 | mean abs. ΔP vs FP32 |"
          " mean abs. ΔP, held-out calib | layers kept float | size |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    row("FP32", args.export / "model.onnx", "–")
    with tempfile.TemporaryDirectory(prefix="edgepack-qdq-variants-") as tmp:
        work = Path(tmp)
        pre = qdq.preprocess(args.export / "model.onnx", work / "pre.onnx")
        for variant in args.variants.split(","):
            method, attention, *extra = variant.split(":")
            smooth = [e for e in extra if e.startswith("s")]
            floated = [e[1:] for e in extra if e.startswith("f")]
            source = pre
            if smooth:
                source = work / f"{smooth[0]}.onnx"
                if not source.exists():
                    inputs, alpha = smooth[0].startswith("si"), float(smooth[0].lstrip("si"))
                    smoothing.smooth(pre, source, tokenizer, calib, length, alpha, inputs)
            prepared = work / "prepared.onnx"
            nodes = qdq.prepare_for_tensorrt(source, prepared, False, attention == "att")
            cache = work / f"calib-{method}-{''.join(smooth)}.json"
            if not cache.exists():
                calibration.calibrate(
                    prepared, tokenizer, calib, length, method, recipe.quantize.percentile,
                    qdq.OP_TYPES, cache,
                )  # fmt: skip
            out = work / f"{variant}.onnx"
            units = qdq.sensitivity_units(prepared, nodes) if floated else {}
            exclude = [n for unit in floated for n in units[unit]]
            calibrated = calibration.calibrate_method(method)
            qdq.quantize_qdq(prepared, out, cache, calibrated, nodes, exclude)
            kept = qdq.float_blocks(onnx.load(str(out)))
            row(variant, out, f"{len(kept)} {kept or ''}")
    print(f"loadavg {loadavg()}")


if __name__ == "__main__":
    main()
