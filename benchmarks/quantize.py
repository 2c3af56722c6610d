"""Benchmark the quantize stage's outputs against FP32 and the optimum-cli baseline.

Interleaved in one process (BENCHMARKING.md): FP32 PyTorch eager (the merged model), FP32
ONNX Runtime, optimum-cli's dynamic INT8 (`--avx512_vnni`, generated into a temp dir),
edgepack's model.int8.onnx and model.qdq.onnx, all on ONNX Runtime CPU with spinning off
and fixed threads. Batch 1 at sequence 32 and 128, batch 32 at 128: median latency,
throughput, file size, accuracy on the recipe's eval split; ratios to FP32 ONNX Runtime.

    .venv/bin/python benchmarks/quantize.py [--dist dist/sensitivity-minilm-cpu]

`--modelopt` instead compares the TensorRT Q/DQ model with NVIDIA ModelOpt's ONNX INT8 PTQ
(max and entropy calibration, and entropy with the blocks edgepack keeps in float) on the
same FP32 model: the recipe's metric and agreement with FP32 on the eval split at the
operating point, as the quantize gate scores them, encoder layers left in float, size.
ModelOpt runs in its own venv (`bash benchmarks/modelopt/setup.sh`).

    .venv/bin/python benchmarks/quantize.py --modelopt [--dist dist/sensitivity-minilm-cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import gate_scoring
from benchmarks.common import ROOT, loadavg
from pipeline.quant.timing import interleaved_medians, synthetic_feeds

MODELOPT_PYTHON = ROOT / "benchmarks/modelopt/.venv/bin/python"
SHAPES = ((1, 32, 40), (1, 128, 30), (32, 128, 5))
"""(batch, sequence, rounds)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist/sensitivity-minilm-cpu")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes/sensitivity-minilm.yaml")
    parser.add_argument(
        "--merged",
        type=Path,
        help="merged HF model for PyTorch eager "
        "(default: the finetune stage's _merged/ in the build cache)",
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/edgepack")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds-scale", type=float, default=1.0)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--modelopt", action="store_true", help="Q/DQ vs ModelOpt table only")
    return parser.parse_args()  # fmt: skip


def find_merged(dist: Path, cache: Path) -> Path | None:
    """The merged model of the build in `dist`, located by its manifest's finetune key."""
    try:
        key = json.loads((dist / "manifest.json").read_text())["stages"]["finetune"]
    except (OSError, KeyError, ValueError):
        return None
    merged = cache / "stages" / "finetune" / key / "_merged"
    return merged if merged.is_dir() else None


def optimum_baseline(onnx_dir: Path, tmp: Path) -> Path:
    """optimum-cli's dynamic INT8 for AVX512-VNNI, exactly as a user would run it."""
    src = tmp / "fp32"
    src.mkdir()
    shutil.copy(onnx_dir / "model.onnx", src / "model.onnx")
    cli = Path(sys.executable).with_name("optimum-cli")
    subprocess.run(
        [str(cli), "onnxruntime", "quantize", "--avx512_vnni", "--onnx_model", str(src),
         "-o", str(tmp / "optimum")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return next((tmp / "optimum").glob("*.onnx"))


def ort_runner(path: Path, threads: int):
    from pipeline.quant.onnx_eval import ort_session

    session = ort_session(path, threads=threads, spinning=False)
    names = [i.name for i in session.get_inputs()]

    def make(batch: int, seq: int):
        feeds = synthetic_feeds(names, batch, seq)
        return lambda: session.run(None, feeds)

    return make


def torch_runner(merged: Path, threads: int):
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(str(merged)).eval()

    def make(batch: int, seq: int):
        feeds = {k: torch.from_numpy(v) for k, v in synthetic_feeds(
            ["input_ids", "attention_mask", "token_type_ids"], batch, seq).items()}  # fmt: skip

        def run():
            with torch.inference_mode():
                return model(**feeds).logits

        return run

    return make


def torch_accuracy(merged: Path, recipe, examples) -> float:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.scoring import classification_metrics

    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    model = AutoModelForSequenceClassification.from_pretrained(str(merged)).eval()
    preds = []
    for i in range(0, len(examples), 32):
        batch = tokenizer([e.text for e in examples[i : i + 32]], padding=True, truncation=True,
                          max_length=recipe.training.max_length, return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            preds += np.argmax(model(**batch).logits.numpy(), axis=1).tolist()
    index = {label: i for i, label in enumerate(recipe.labels)}
    truth = [index[e.label] for e in examples]
    return classification_metrics(truth, preds, index[recipe.positive_label])[recipe.eval.metric]


def main() -> None:
    args = parse_args()
    from pipeline.data import load_split
    from pipeline.quant.onnx_eval import evaluate, load_tokenizer
    from pipeline.recipe import load_recipe

    onnx_dir = args.dist / "onnx"
    if not (onnx_dir / "model.int8.onnx").is_file():
        sys.exit(f"error: {onnx_dir}/model.int8.onnx not found: run `make build` first")
    recipe = load_recipe(args.recipe)
    examples = load_split(recipe, "eval")
    tokenizer = load_tokenizer(onnx_dir)
    if args.modelopt:
        compare_modelopt(onnx_dir, recipe, tokenizer, examples, args.json)
        return
    merged = None if args.no_torch else (args.merged or find_merged(args.dist, args.cache))
    tmp = Path(tempfile.mkdtemp(prefix="edgepack-bench-"))
    try:
        models = {
            "ort-fp32": onnx_dir / "model.onnx",
            "optimum-int8": optimum_baseline(onnx_dir, tmp),
            "edgepack-int8": onnx_dir / "model.int8.onnx",
            "edgepack-qdq": onnx_dir / "model.qdq.onnx",
        }
        makers = {name: ort_runner(path, args.threads) for name, path in models.items()}
        sizes = {name: path.stat().st_size for name, path in models.items()}
        metric = recipe.eval.metric
        accuracy = {
            name: evaluate(path, tokenizer, examples, recipe.labels, recipe.positive_label,
                           recipe.training.max_length)[metric]
            for name, path in models.items()
        }  # fmt: skip
        if merged is not None:
            makers = {"torch-fp32": torch_runner(merged, args.threads)} | makers
            sizes["torch-fp32"] = sum(f.stat().st_size for f in merged.glob("*.safetensors"))
            accuracy["torch-fp32"] = torch_accuracy(merged, recipe, examples)
        report = {"loadavg_before": loadavg(), "threads": args.threads, "shapes": {}}
        for batch, seq, rounds in SHAPES:
            runners = {name: make(batch, seq) for name, make in makers.items()}
            rounds = max(3, int(rounds * args.rounds_scale))
            med = interleaved_medians(runners, rounds=rounds, warmup=2)
            report["shapes"][f"b{batch}_s{seq}"] = {
                "rounds": rounds,
                **{n: {"ms": m * 1000, "per_s": batch / m, "ratio": m / med["ort-fp32"]}
                   for n, m in med.items()},
            }  # fmt: skip
        report["loadavg_after"] = loadavg()
        report["size"] = {n: {"bytes": s, "ratio": s / sizes["ort-fp32"]} for n, s in sizes.items()}
        report["accuracy"] = {n: 100 * a for n, a in accuracy.items()}
        print_report(report, metric)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_modelopt(onnx_dir: Path, recipe, tokenizer, examples, json_out: Path | None) -> None:
    """The Q/DQ model against ModelOpt's INT8 PTQ of the same FP32 model (table on stdout)."""
    import numpy as np
    import onnx

    from pipeline.data import load_split
    from pipeline.quant.calibration import pick_samples
    from pipeline.quant.onnx_eval import encode
    from pipeline.quant.qdq import float_blocks

    if not MODELOPT_PYTHON.is_file():
        sys.exit(f"error: {MODELOPT_PYTHON} not found: run `bash benchmarks/modelopt/setup.sh`")
    fp32, ours = onnx_dir / "model.onnx", onnx_dir / "model.qdq.onnx"
    names = [i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input]
    texts = pick_samples([e.text for e in load_split(recipe, "calib")], recipe.quantize.samples)
    kept = float_blocks(onnx.load(str(ours), load_external_data=False))
    tmp = Path(tempfile.mkdtemp(prefix="edgepack-modelopt-"))
    try:
        np.savez(tmp / "calib.npz", **encode(tokenizer, texts, recipe.training.max_length, names))
        source = Path(shutil.copyfile(fp32, tmp / "model.onnx"))  # ModelOpt rewrites its input
        models = {"FP32": fp32, "edgepack model.qdq.onnx": ours}
        runs = {"max": ("max", []), "entropy": ("entropy", [])}
        if kept:
            runs[f"entropy, {', '.join(kept)} float"] = (
                "entropy",
                [f".*/{re.escape(b)}/" for b in kept],
            )
        for label, (method, exclude) in runs.items():
            out = tmp / f"modelopt-{len(models)}.onnx"
            done = subprocess.run(
                [str(MODELOPT_PYTHON), str(ROOT / "benchmarks/modelopt/quantize_int8.py"),
                 "--onnx", str(source), "--calib", str(tmp / "calib.npz"), "--method", method,
                 "--out", str(out), "--exclude", *exclude],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode:
                sys.exit(f"error: ModelOpt {label} failed: {done.stderr[-2000:]}")
            models[f"ModelOpt int8 {label}"] = out
        threshold, score = gate_scoring.scorer(recipe, onnx_dir, examples)
        scored = {name: score(path) for name, path in models.items()}
        rows = {}
        for name, path in models.items():
            scores, found = scored[name]
            rows[name] = {
                recipe.eval.metric: 100 * found[recipe.eval.metric],
                "agreement": gate_scoring.agreement(scores, scored["FP32"][0], threshold),
                "float_layers": None if name == "FP32" else float_blocks(onnx.load(str(path))),
                "mb": path.stat().st_size / 1e6,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"threshold {threshold:.4f}; loadavg {loadavg()}")
    print(
        f"| model | {recipe.eval.metric} (eval) | agreement with FP32 | layers kept float | size |"
    )
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        blocks = row["float_layers"]
        kept_text = "–" if blocks is None else f"{len(blocks)} ({', '.join(blocks) or 'none'})"
        print(f"| {name} | {row[recipe.eval.metric]:.1f} | {row['agreement']:.1f} | "
              f"{kept_text} | {row['mb']:.1f} MB |")  # fmt: skip
    if json_out:
        json_out.write_text(json.dumps(rows, indent=1))


def print_report(report: dict, metric: str) -> None:
    print(f"threads={report['threads']}  loadavg before {report['loadavg_before']}"
          f"  after {report['loadavg_after']}  (ratios: to ort-fp32, same run)")  # fmt: skip
    names = list(report["size"])
    for shape, figures in report["shapes"].items():
        print(f"\n{shape}  ({figures['rounds']} interleaved rounds, median)")
        print(f"  {'variant':<15} {'ms':>9} {'seq/s':>9} {'ratio':>7}")
        for name in names:
            f = figures[name]
            print(f"  {name:<15} {f['ms']:>9.2f} {f['per_s']:>9.1f} {f['ratio']:>7.2f}")
    print(f"\n  {'variant':<15} {'MB':>9} {'ratio':>7} {metric:>9}")
    for name in names:
        s = report["size"][name]
        print(f"  {name:<15} {s['bytes'] / 1e6:>9.1f} {s['ratio']:>7.2f} "
              f"{report['accuracy'][name]:>9.2f}")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
