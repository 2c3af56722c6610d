"""EngineSpec for a target profile and an ONNX model (host side only, not shipped)."""

from __future__ import annotations

from pathlib import Path

from pipeline.target import Target
from router.errors import UserError

from .spec import EngineSpec, profile_shapes


def onnx_io(path: Path) -> tuple[list[dict], list[dict], int]:
    """Inputs and outputs ({name, elem_type, dims}) and the default-domain opset of a model."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return {"name": value.name, "elem_type": tensor.elem_type, "dims": dims}

    inputs = [describe(v) for v in model.graph.input if v.name not in initializers]
    outputs = [describe(v) for v in model.graph.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return inputs, outputs, opset


def engine_spec(target: Target, onnx: Path) -> EngineSpec:
    """The build settings of the target profile for this model's inputs."""
    if target.tensorrt is None or target.gpu is None:
        raise UserError(f"target {target.name}: tensorrt/gpu: missing (no engine for this target)")
    inputs, _outputs, opset = onnx_io(onnx)
    if opset > target.onnx_max_opset:
        raise UserError(
            f"{onnx}: opset {opset} is above target {target.name}'s onnx_max_opset "
            f"{target.onnx_max_opset} (TensorRT {target.tensorrt.line} can't parse it)"
        )
    names = tuple(i["name"] for i in inputs)
    p = target.profile
    trt = target.tensorrt
    dla_core = 0 if trt.use_dla and target.gpu.dla_cores > 0 else None
    return EngineSpec(
        target=target.name,
        trt_line=trt.line,
        compute_capability=target.gpu.compute_capability,
        strongly_typed=trt.strongly_typed or int(trt.line.split(".")[0]) >= 11,
        workspace_mb=trt.workspace_mb,
        inputs=names,
        shapes=profile_shapes(
            names,
            (p.batch.min, p.batch.opt, p.batch.max),
            (p.sequence.min, p.sequence.opt, p.sequence.max),
        ),
        dla_core=dla_core,
        dla_cores=target.gpu.dla_cores,
    )
