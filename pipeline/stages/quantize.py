"""quantize: calibrate on the recipe's calib split, write the TensorRT Q/DQ model and the
fastest CPU INT8 model, lint the first for the target's TensorRT, gate both on accuracy
at the model's operating point (the threshold finetune chose), and gate the CPU model on
batch invariance: a prompt scores the same alone as in any batch, or the candidate is out.

Outputs `onnx/model.qdq.onnx` and `onnx/model.int8.onnx`, the latter (the router's model)
with a second output `embedding` (pipeline/pooling.py: topics are matched on it); scratch
work stays in `_work/` and is deleted, so nothing over budget can reach the cache or `dist/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import operating_point, pooling
from pipeline.data import load_split
from pipeline.errors import StageFailed
from pipeline.quant import calibration, cpu_int8, invariance, lint, onnx_eval, qdq, smoothing
from pipeline.quant.gate import MAX_BATCH_DELTA, Attempt, GateResult, run_gate
from pipeline.quant.timing import default_threads, loadavg
from pipeline.stage import Stage, StageContext
from router.errors import UserError

SENSITIVITY_SAMPLES = 64
INVARIANCE_SAMPLES = 128
"""Texts (half calib, half eval) each model is scored on alone and in shuffled batches."""
QDQ_CANDIDATE = "static-qdq"
"""The TensorRT Q/DQ model as a CPU candidate (ORT runs it too)."""


def run(ctx: StageContext) -> dict:
    export_dir = ctx.inputs["export"] / "onnx"
    fp32 = export_dir / "model.onnx"
    if not fp32.is_file():
        raise UserError(f"{fp32}: the export stage left no model.onnx")
    recipe, metric = ctx.recipe, ctx.recipe.eval.metric
    work = ctx.out / "_work"
    work.mkdir()
    try:
        tokenizer = onnx_eval.load_tokenizer(export_dir)
        eval_set = load_split(recipe, "eval")
        calib_texts = [e.text for e in load_split(recipe, "calib")]
        found = operating_point.read(export_dir)
        threshold = found if found is not None else operating_point.CEILING

        def evaluate(path: Path) -> dict:
            return onnx_eval.evaluate(
                path, tokenizer, eval_set, recipe.labels, recipe.positive_label,
                recipe.training.max_length, threshold=threshold,
            )  # fmt: skip

        ctx.progress("evaluating FP32")
        fp32_scores = evaluate(fp32)
        invariance_texts = calibration.pick_samples(
            calib_texts, INVARIANCE_SAMPLES // 2
        ) + calibration.pick_samples([e.text for e in eval_set], INVARIANCE_SAMPLES // 2)
        judge = _Judge(
            ctx, fp32, tokenizer, calib_texts, evaluate, 100.0 * fp32_scores[metric],
            invariance_texts, threshold,
        )  # fmt: skip
        fp32_invariance = judge.invariance(fp32)
        samples = calibration.pick_samples(calib_texts, recipe.quantize.samples)
        qdq_model = _build_qdq(ctx, fp32, work, tokenizer, samples, judge)
        cpu = _build_cpu_int8(ctx, fp32, work, tokenizer, samples, qdq_model, judge)
        invariance = {
            "max_delta_allowed": MAX_BATCH_DELTA,
            "fp32": fp32_invariance.row(),
            "int8": cpu["invariance"].row(),
            "qdq": cpu["table"][QDQ_CANDIDATE]["batch_invariance"],  # the same file
        }
        out = ctx.out / "onnx"
        out.mkdir()
        shutil.copyfile(qdq_model["result"].path, out / "model.qdq.onnx")
        shutil.copyfile(cpu["result"].path, out / "model.int8.onnx")
        try:
            pooling.add_pooled_output(out / "model.int8.onnx")
        except ValueError as exc:
            raise StageFailed("quantize", f"model.int8.onnx: pooled embedding: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = {
        "fp32": fp32.stat().st_size,
        "qdq": (out / "model.qdq.onnx").stat().st_size,
        "int8": (out / "model.int8.onnx").stat().st_size,
    }
    ctx.note(
        f"int8: {cpu['chosen']} ({cpu['speed']:.2f}x FP32 time, "
        f"{sizes['int8'] / sizes['fp32']:.2f}x size); qdq lint clean for {ctx.target.name}"
    )
    return {
        "metric": metric,
        "threshold": threshold,
        "budget": recipe.eval.int8_budget,
        "fp32": fp32_scores,
        "int8": cpu["result"].metrics,
        "int8_drop_by_subset": _drops(fp32_scores, cpu["result"].metrics, metric),
        "qdq": qdq_model["result"].metrics,
        "chosen": cpu["chosen"],
        "candidates": cpu["table"],
        "timing": cpu["timing"],
        "gate": [a.row() for a in judge.attempts],
        "batch_invariance": invariance,
        "sizes": sizes,
        "calibration": qdq_model["calibration"],
        "qdq_nodes": qdq_model["nodes"],
        "lint": {"target": ctx.target.name, "violations": 0},
    }


class _Judge:
    """Evaluation and FP32-output comparison shared by every gate run of the stage."""

    def __init__(
        self, ctx, fp32, tokenizer, calib_texts, evaluate, fp32_points, invariance_texts,
        threshold,
    ) -> None:  # fmt: skip
        self.ctx, self.evaluate, self.fp32_points = ctx, evaluate, fp32_points
        self.invariance_texts, self.threshold = invariance_texts, threshold
        self.tokenizer, self.attempts = tokenizer, []
        self.texts = calibration.pick_samples(calib_texts, SENSITIVITY_SAMPLES)
        self.reference = self._probs(fp32)

    def _probs(self, path: Path):
        import numpy as np

        session = onnx_eval.ort_session(path)
        logits = onnx_eval.predict_logits(
            session, self.tokenizer, self.texts, self.ctx.recipe.training.max_length
        )
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def invariance(self, path: Path):
        """Scores alone vs in shuffled padded batches (`pipeline.quant.invariance`)."""
        recipe = self.ctx.recipe
        return invariance.measure(
            path, self.tokenizer, self.invariance_texts, recipe.training.max_length,
            recipe.labels.index(recipe.positive_label), self.threshold,
        )  # fmt: skip

    def output_error(self, path: Path) -> float:
        """Mean absolute difference of class probabilities vs FP32 on calib samples."""
        return float(abs(self._probs(path) - self.reference).mean())

    def gate(self, name, build, units, work):
        return run_gate(
            name, build, units, self.evaluate, self.output_error, self.fp32_points,
            self.ctx.recipe.eval.metric, self.ctx.recipe.eval.int8_budget, work,
            progress=self.ctx.progress, attempts=self.attempts,
        )  # fmt: skip


def _calibrate(ctx: StageContext, model: Path, tokenizer, samples, op_types, cache: Path,
               inputs_of: list[str], symmetric: bool = True) -> Path:  # fmt: skip
    """The recipe's calibration of `model` (method, percentile, max length) into `cache`:
    the activation inputs of the nodes `inputs_of` names, which are all a model that
    quantizes inputs only reads."""
    q = ctx.recipe.quantize
    return calibration.calibrate(
        model, tokenizer, samples, ctx.recipe.training.max_length, q.calibration,
        q.percentile, op_types, cache, symmetric=symmetric, inputs_of=inputs_of,
    )  # fmt: skip


def _build_qdq(ctx: StageContext, fp32: Path, work: Path, tokenizer, samples, judge) -> dict:
    """Calibrate, quantize to Q/DQ, gate, then lint for the target's TensorRT.

    Smoothing moves activation outliers into the weights, which the Q/DQ model quantizes per
    output channel (docs/decisions/007-tensorrt-qdq-placement.md).
    """
    q = ctx.recipe.quantize
    expand_ln = bool(
        ctx.target.tensorrt
        and "LayerNormalization" in lint.unsupported_ops(ctx.target.tensorrt.line)
    )
    ctx.progress("pre-processing (shape inference)")
    source = qdq.preprocess(fp32, work / "pre.onnx")
    smoothed = 0
    if q.smoothing is not None:
        ctx.progress(f"smoothing activations (alpha {q.smoothing}, {len(samples)} samples)")
        smoothed = smoothing.smooth(
            source, work / "smoothed.onnx", tokenizer, samples, ctx.recipe.training.max_length,
            q.smoothing,
        )  # fmt: skip
        source = work / "smoothed.onnx"
    prepared = work / "prepared.onnx"
    nodes = qdq.prepare_for_tensorrt(source, prepared, expand_layernorm=expand_ln)
    ctx.progress(f"calibrating ({q.calibration}, {len(samples)} samples)")
    cache = _calibrate(
        ctx, prepared, tokenizer, samples, qdq.OP_TYPES, work / "calibration-qdq.json", nodes
    )
    method = calibration.calibrate_method(q.calibration)

    def build(dst: Path, exclude) -> Path:
        if set(nodes) <= set(exclude):
            return Path(shutil.copyfile(prepared, dst))
        return qdq.quantize_qdq(prepared, dst, cache, method, nodes, exclude)

    result = judge.gate("qdq", build, qdq.sensitivity_units(prepared, nodes), work)
    violations = lint.lint_file(result.path, ctx.target)
    if violations:
        listed = "; ".join(str(v) for v in violations[:20])
        raise StageFailed(
            "quantize",
            f"model.qdq.onnx fails the TensorRT lint for {ctx.target.name} "
            f"({len(violations)} violations): {listed}",
        )
    return {
        "result": result,
        "nodes": len(nodes),
        "calibration": {
            "method": q.calibration,
            "samples": len(samples),
            "percentile": q.percentile if q.calibration == "percentile" else None,
            "layernorm_expanded": expand_ln,
            "smoothing": q.smoothing,
            "smoothed_sites": smoothed,
        },
    }


def _build_cpu_int8(
    ctx: StageContext, fp32: Path, work: Path, tokenizer, samples, qdq_model: dict, judge
) -> dict:
    """Build the candidates, time them interleaved, keep the one `cpu_int8.choose` picks."""
    q = ctx.recipe.quantize
    ctx.progress("fusing the BERT graph")
    fused = cpu_int8.bert_fusion(fp32, work / "fused.onnx")
    ctx.progress(f"calibrating the fused graph ({q.calibration}, {len(samples)} samples)")
    ops = cpu_int8.CALIBRATED_OPS
    cache = _calibrate(
        ctx, fused, tokenizer, samples, ops, work / "calibration-fused.json",
        cpu_int8.quantized_nodes(fused, ops), symmetric=False,
    )  # fmt: skip
    candidates = [
        cpu_int8.dynamic_candidate("fused-dynamic", fused, work, False, False),
        cpu_int8.static_fused_candidate(fused, cache, work),
        cpu_int8.fixed_candidate(QDQ_CANDIDATE, qdq_model["result"].path),
    ]
    built, table, invariance = {}, {}, {}
    for cand in candidates:
        ctx.progress(f"building {cand.name}")
        try:
            path = cand.build(work / f"{cand.name}.onnx", [])
        except ValueError as exc:  # e.g. static-fused: a tensor calibration did not reach
            raise StageFailed("quantize", f"{cand.name}: {exc}") from None
        ctx.progress(f"{cand.name}: scoring alone vs in shuffled batches")
        invariance[cand.name] = judge.invariance(path)
        table[cand.name] = {"size_bytes": path.stat().st_size,
                            "batch_invariance": invariance[cand.name].row()}  # fmt: skip
        if invariance[cand.name].passed:
            built[cand.name] = path
    if not built:
        raise StageFailed("quantize", _invariance_failure(invariance))
    ctx.progress(f"timing {len(built)} batch-invariant candidates against FP32 (interleaved)")
    threads = default_threads()
    load_before = loadavg()
    timing = cpu_int8.time_models(built, fp32, threads)
    speed = {name: cpu_int8.speed_score(timing[name]) for name in built}
    for name in built:
        table[name]["speed"] = round(speed[name], 3)
    budget = ctx.recipe.eval.int8_budget

    def outright(name: str) -> GateResult | None:
        ctx.progress(f"evaluating {name}")
        scores = judge.evaluate(built[name])
        points = 100.0 * scores[ctx.recipe.eval.metric]
        drop = judge.fp32_points - points
        passed = drop <= budget
        table[name] |= {"metrics": scores, "drop": round(drop, 3), "passed": passed}
        judge.attempts.append(Attempt(name, [], points, drop, passed))
        return GateResult(built[name], scores) if passed else None

    def gate(name: str) -> GateResult:  # with its most sensitive nodes kept in float
        cand = next(c for c in candidates if c.name == name)
        nodes = cand.nodes()
        return run_gate(
            name, cand.build, {n: [n] for n in nodes}, judge.evaluate, judge.output_error,
            judge.fp32_points, ctx.recipe.eval.metric, budget, work, progress=ctx.progress,
            attempts=judge.attempts, groups=qdq.group_blocks(nodes),
            failed_as_built=table[name].get("passed") is False,
        )  # fmt: skip

    chosen, result = cpu_int8.choose(speed, outright, gate)
    if result.path != built[chosen]:  # the gate kept nodes in float: a new model to check
        invariance[chosen] = judge.invariance(result.path)
        if not invariance[chosen].passed:
            raise StageFailed("quantize", _invariance_failure({chosen: invariance[chosen]}))
    if speed[chosen] >= 1.0:
        ctx.note(
            f"warning: model.int8.onnx ({chosen}) takes {speed[chosen]:.2f}x FP32's time on "
            "this CPU: no faster INT8 candidate passes the accuracy budget"
        )
    return {
        "result": result,
        "chosen": chosen,
        "invariance": invariance[chosen],
        "speed": speed[chosen],
        "table": table,
        "timing": {
            "threads": threads,
            "loadavg": [load_before, loadavg()],
            "shapes": [f"b{b}_s{s}" for b, s in cpu_int8.TIMING_SHAPES],
            "median": timing,
        },
    }


def _drops(fp32: dict, int8: dict, metric: str) -> dict:
    """Points of `metric` INT8 loses against FP32 in each eval subset and language."""
    return {
        subset: {
            lang: round(100.0 * (m[metric] - int8["subsets"][subset][lang][metric]), 3)
            for lang, m in by_lang.items()
        }
        for subset, by_lang in fp32["subsets"].items()
    }


def _invariance_failure(found: dict) -> str:
    threshold = next(iter(found.values())).threshold
    rows = "; ".join(
        f"{name}: max |delta| {inv.max_delta:.4f}, {inv.flips} of {inv.rows} flipped"
        for name, inv in found.items()
    )
    return (
        "no CPU INT8 candidate scores a prompt alone as it does in a batch (allowed: "
        f"|delta| <= {MAX_BATCH_DELTA}, no decision flipped at {threshold:.4f}): {rows}"
    )


STAGE = Stage(
    name="quantize",
    run=run,
    needs=("export",),
    recipe_fields=("quantize", "eval", "labels", "positive_label", "training.max_length"),
    target_fields=("onnx_max_opset", "tensorrt.line"),
    data_splits=("calib", "eval"),
    packages=("onnx", "onnxruntime"),
)
