"""Build a serialized TensorRT engine from a Q/DQ ONNX model with the Python API.

Same settings as the trtexec command from flags.py: optimization profile, workspace,
precision (weakly typed INT8+FP16 on 8.x/10.x, strongly typed on 10.x opt-in and 11.x),
DLA with GPU fallback, and a timing cache that is read before and written after.
"""

from __future__ import annotations

import time
from pathlib import Path

from .flags import builder_flag_names, network_flag_names
from .spec import EngineSpec


def build_settings(spec: EngineSpec, dla_core: int | None, timing_cache: Path | None) -> dict:
    """What build_engine() will set, as data (printed by `build_engine.py --dry-run`)."""
    return {
        "network_flags": network_flag_names(spec),
        "builder_flags": builder_flag_names(spec, dla_core),
        "workspace_bytes": spec.workspace_mb << 20,
        "profile": spec.shapes,
        "dla_core": dla_core,
        "timing_cache": str(timing_cache) if timing_cache else None,
    }


def build_engine(
    spec: EngineSpec,
    onnx: Path,
    plan: Path,
    *,
    timing_cache: Path | None = None,
    dla_core: int | None = None,
) -> dict:
    """Write `plan`; returns TensorRT version, build seconds and the engine's I/O tensors."""
    import tensorrt as trt

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    for name in network_flag_names(spec):
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx}: TensorRT could not parse the model: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    for name in builder_flag_names(spec, dla_core):
        config.set_flag(getattr(trt.BuilderFlag, name))
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core

    profile = builder.create_optimization_profile()
    for name in spec.inputs:
        dims = [tuple(spec.shapes[level][name]) for level in ("min", "opt", "max")]
        profile.set_shape(name, *dims)
    config.add_optimization_profile(profile)

    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx}: TensorRT engine build failed (see the log above)")
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_bytes(memoryview(serialized))
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return {
        "tensorrt": trt.__version__,
        "build_seconds": round(time.perf_counter() - started, 2),
        "io": engine_io(plan),
    }


def engine_io(plan: Path) -> dict[str, dict]:
    """Name → {mode, dtype, shape} of every I/O tensor of a serialized engine."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        io[name] = {
            "mode": "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output",
            "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1],
            "shape": list(engine.get_tensor_shape(name)),
        }
    return io
