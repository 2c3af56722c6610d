"""trtexec arguments and Python-API builder settings per TensorRT line.

- 8.x (JetPack 5): weakly typed; Q/DQ INT8 needs `--int8` (plus `--fp16` for the rest);
  explicit batch must be requested in the API; `--buildOnly` skips the timing run.
- 10.x: weakly typed with `--int8 --fp16`, or `--stronglyTyped` (types from the Q/DQ
  graph); implicit batch is gone; `--skipInference` (since 8.6).
- 11.x: every network is strongly typed; the precision flags were removed.
Workspace uses `--memPoolSize=workspace:<MiB>` (MiB is the unit without suffix on 8.5+).
"""

from __future__ import annotations

from .spec import EngineSpec


def precision_args(spec: EngineSpec) -> list[str]:
    major, _minor = spec.major_minor
    if major >= 11:
        return []
    if spec.strongly_typed:
        if major < 10:
            raise ValueError(f"TensorRT {spec.trt_line} has no strongly typed networks")
        return ["--stronglyTyped"]
    return ["--int8", "--fp16"]


def shape_arg(shapes: dict[str, list[int]]) -> str:
    """`input_ids:1x8,attention_mask:1x8` (trtexec's shape spec)."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def dla_args(core: int | str) -> list[str]:
    return [f"--useDLACore={core}", "--allowGPUFallback"]


def trtexec_args(
    spec: EngineSpec, *, onnx: str, engine: str, timing_cache: str | None, dla: bool = True
) -> list[str]:
    """The complete trtexec argument list (without the program name)."""
    args = [f"--onnx={onnx}", f"--saveEngine={engine}"]
    for level in ("min", "opt", "max"):
        args.append(f"--{level}Shapes={shape_arg(spec.shapes[level])}")
    args.append(f"--memPoolSize=workspace:{spec.workspace_mb}")
    args += precision_args(spec)
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    args.append("--skipInference" if spec.major_minor >= (8, 6) else "--buildOnly")
    if dla and spec.dla_core is not None:
        args += dla_args(spec.dla_core)
    return args


def network_flag_names(spec: EngineSpec) -> list[str]:
    """NetworkDefinitionCreationFlag members to set for `builder.create_network`."""
    major, _minor = spec.major_minor
    if major < 10:
        return ["EXPLICIT_BATCH"]
    if major == 10 and spec.strongly_typed:
        return ["STRONGLY_TYPED"]
    return []  # 10.x weakly typed: explicit batch is implicit; 11.x: always strongly typed


def builder_flag_names(spec: EngineSpec, dla_core: int | None) -> list[str]:
    """BuilderFlag members to set on the builder config."""
    major, _minor = spec.major_minor
    names = ["INT8", "FP16"] if major < 11 and not spec.strongly_typed else []
    if dla_core is not None:
        names.append("GPU_FALLBACK")
    return names


def precision_mode(spec: EngineSpec) -> str:
    """How INT8 reaches the engine, in words (metrics, README, model card)."""
    major, _minor = spec.major_minor
    if major >= 11:
        return "strongly typed (TensorRT 11: types from the Q/DQ graph)"
    if spec.strongly_typed:
        return "strongly typed (--stronglyTyped: types from the Q/DQ graph)"
    return "weakly typed, explicit INT8 from Q/DQ + FP16 (--int8 --fp16)"
