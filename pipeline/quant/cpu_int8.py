"""The CPU model: the fastest INT8 variant for ONNX Runtime (onnx/model.int8.onnx).

Which variant wins depends on the CPU (VNNI/AMX or not, thread count), so the stage
builds a few candidates, rejects those whose scores depend on the batch (the gate's
batch-invariance check, `pipeline.quant.invariance`), times the rest against FP32 on this
machine (interleaved, medians) and keeps the fastest that passes the accuracy gate,
preferring any that beats FP32 (`choose`). Candidates:
- `fused-dynamic`: onnxruntime.transformers' BERT fusion (Attention, SkipLayerNorm,
  BiasGelu, EmbedLayerNorm) then `quantize_dynamic` of the weights (MatMul, Attention,
  and the embedding tables, which are half of MiniLM's bytes). Its activation scales are
  computed per batch tensor, padding included, so a prompt's score depends on its
  neighbours: the invariance check rejects it (one dynamic candidate stays, as the check's
  witness; per-channel and `reduce_range` variants share the flaw and are not built);
- `static-fused`: the same fused graph and kernels, weights per channel, with each
  `DynamicQuantizeLinear` replaced by a `QuantizeLinear` of calibrated scale
  (`pipeline.quant.static_scales`): every row is computed on its own (invariant by
  design). It replaced `quantize_static` QOperator on the unfused graph, which was slower
  and less accurate here (docs/decisions/005-batch-invariant-cpu-int8.md);
- `static-qdq`: the TensorRT Q/DQ model as ORT runs it (fixed scales too).
Every candidate is saved as ORT's optimized graph, so loading it does not re-fuse.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipeline.errors import StageFailed
from pipeline.quant import calibration, static_scales
from pipeline.quant.onnx_eval import ort_session
from pipeline.quant.timing import interleaved_medians, synthetic_feeds

R = TypeVar("R")

DYNAMIC_OPS = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
CALIBRATED_OPS = ("MatMul", "Attention", "Gemm")
"""Whose inputs `static-fused` needs ranges for (quantize_dynamic turns Gemm into MatMul)."""
TIMING_SHAPES = ((1, 128), (8, 128))
"""(batch, sequence) the stage times: the router's single request and a small batch."""


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[Path, Sequence[str]], Path]
    """(destination, node names to keep in float) → the saved model."""
    nodes: Callable[[], list[str]]
    """The nodes this candidate quantizes (the units of sensitivity exclusion)."""


def bert_fusion(src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0) -> Path:
    """onnxruntime.transformers' BERT fusion; heads/hidden size 0 = read from the graph.

    Saved with symbolic shapes: ORT's calibrator only records tensors whose type it knows,
    and plain ONNX shape inference knows nothing of the fused (contrib) ops' outputs."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
    )
    model.save_model_to_file(str(dst))  # adds the com.microsoft opset the fused ops need
    try:
        shaped = SymbolicShapeInference.infer_shapes(onnx.load(str(dst)), auto_merge=True)
    except Exception as exc:  # symbolic inference can give up on exotic graphs
        logging.getLogger(__name__).info("symbolic shape inference failed (%s)", exc)
        return dst  # static-fused then names the tensors it has no range for
    onnx.save(shaped, str(dst))
    return dst


def save_optimized(src: Path, dst: Path, fold_constants: bool = True) -> Path:
    """Let ORT apply its extended (CPU) fusions once and save the result.

    `fold_constants=False` for fixed activation scales: folding the product of two constant
    scales first hides the pattern ORT fuses into MatMulIntegerToFloat (one kernel instead
    of MatMulInteger, Cast and Mul)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    disabled = [] if fold_constants else ["ConstantFolding"]
    ort.InferenceSession(
        str(src), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )
    return dst


def quantized_nodes(model_path: Path, op_types: Sequence[str]) -> list[str]:
    """Names of the nodes a quantizer would touch (weights-bearing nodes only)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and (n.op_type != "Gather" or n.input[0] in inits)
    ]


def dynamic_candidate(
    name: str, fused: Path, work: Path, per_channel: bool, reduce_range: bool
) -> Candidate:
    def build(dst: Path, exclude: Sequence[str]) -> Path:
        raw = work / f"{dst.stem}.raw.onnx"
        return save_optimized(
            _quantize_dynamic(fused, raw, per_channel, reduce_range, exclude), dst
        )

    return Candidate(name, build, lambda: quantized_nodes(fused, DYNAMIC_OPS))


def _quantize_dynamic(
    fused: Path, dst: Path, per_channel: bool, reduce_range: bool, exclude: Sequence[str]
) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_preprocess_advice():
        quantize_dynamic(
            str(fused),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=list(DYNAMIC_OPS),
            nodes_to_exclude=list(exclude),
            extra_options={
                "MatMulConstBOnly": True,
                "DefaultTensorType": onnx.TensorProto.FLOAT,
            },
        )
    return dst


class _PreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "consider to run pre-processing" not in record.getMessage()


@contextmanager
def _without_preprocess_advice() -> Iterator[None]:
    """quantize_dynamic warns on the root logger, at every call, that the model was not
    pre-processed (shape inference and graph optimisation): a WARNING line per candidate
    and per gate attempt in the build's output. The fused graph is already ORT's optimised
    one, and weight-only quantization needs no activation shapes, so it is dropped here."""
    advice = _PreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def static_fused_candidate(fused: Path, calib_cache: Path, work: Path) -> Candidate:
    """quantize_dynamic's fused model with its activation scales fixed from `calib_cache`
    (ranges of the inputs of `CALIBRATED_OPS` in `fused`, asymmetric)."""

    ranges = calibration.load_ranges(calib_cache)

    def build(dst: Path, exclude: Sequence[str]) -> Path:
        raw = _quantize_dynamic(fused, work / f"{dst.stem}.raw.onnx", True, False, exclude)
        fixed = static_scales.fix_scales(raw, work / f"{dst.stem}.fixed.onnx", ranges)
        return save_optimized(fixed, dst, fold_constants=False)

    return Candidate("static-fused", build, lambda: quantized_nodes(fused, DYNAMIC_OPS))


def fixed_candidate(name: str, model: Path) -> Candidate:
    """A model built elsewhere (the TensorRT Q/DQ model); exclusion does not apply."""

    def build(dst: Path, exclude: Sequence[str]) -> Path:
        return save_optimized(model, dst) if not exclude else shutil.copyfile(model, dst)

    return Candidate(name, build, lambda: [])


def time_models(
    models: dict[str, Path], baseline: Path, threads: int, budget_s: float = 4.0
) -> dict[str, dict]:
    """Median ms per (batch, seq) shape and ratio to FP32 ORT, all variants interleaved."""
    sessions = {"fp32": ort_session(baseline, threads, spinning=False)}
    sessions |= {n: ort_session(p, threads, spinning=False) for n, p in models.items()}
    figures: dict[str, dict] = {name: {} for name in sessions}
    for batch, seq in TIMING_SHAPES:
        runners = {}
        for name, sess in sessions.items():
            feeds = synthetic_feeds([i.name for i in sess.get_inputs()], batch, seq)
            runners[name] = lambda s=sess, f=feeds: s.run(None, f)
        medians = interleaved_medians(runners, rounds=50, warmup=1, budget_s=budget_s)
        for name, seconds in medians.items():
            figures[name][f"b{batch}_s{seq}"] = {
                "ms": round(seconds * 1000, 3),
                "ratio": round(seconds / medians["fp32"], 3),
            }
    return figures


def speed_score(figure: dict) -> float:
    """Geometric mean of the ratios to FP32 over the timed shapes (lower is faster)."""
    import math

    ratios = [v["ratio"] for v in figure.values()]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def choose(
    speed: dict[str, float],
    outright: Callable[[str], R | None],
    gate: Callable[[str], R],
) -> tuple[str, R]:
    """Which candidate becomes the CPU model, and its gate result.

    First the fastest that passes as built among those faster than FP32; then the fastest
    of those with its most sensitive nodes kept in float (`gate`): it stays faster than
    FP32, where a slower candidate that passes as built (the Q/DQ model, which ORT runs
    slower than FP32 on most CPUs) would ship an INT8 model that helps nobody. Such a one
    is taken only when that gate fails, and the gate's failure is raised when none passes.
    With no candidate faster than FP32, each is tried as built and the fastest is gated last."""
    ranked = sorted(speed, key=speed.__getitem__)
    fast = [name for name in ranked if speed[name] < 1.0]
    for name in fast:
        if (result := outright(name)) is not None:
            return name, result
    failure: StageFailed | None = None
    if fast:
        try:
            return fast[0], gate(fast[0])
        except StageFailed as exc:
            failure = exc
    for name in ranked[len(fast) :]:
        if (result := outright(name)) is not None:
            return name, result
    if failure is not None:
        raise failure
    return ranked[0], gate(ranked[0])
