"""engine: a TensorRT engine from the Q/DQ model where the target's GPU is, else a
deferred build that says so.

TensorRT engines are tied to one GPU architecture and one TensorRT version. The stage
builds `engine/model.plan` only when `tensorrt` imports, a GPU is present and both match
the target profile (an A100 CI runner, or the Jetson itself). Anywhere else it writes the
deferred build (host targets: `engine/build_engine.sh` + `build_engine.py`; Jetson
targets: the kit lives in the `jetson/` bundle) and prints one line saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.engine.build import build_engine
from pipeline.engine.capability import Host, build_blockers
from pipeline.engine.flags import precision_mode
from pipeline.engine.target_spec import engine_spec
from pipeline.packaging.device_build import write_build_kit
from pipeline.stage import Stage, StageContext

QDQ = Path("onnx/model.qdq.onnx")


def run(ctx: StageContext) -> dict:
    target = ctx.target
    if target.engine_build == "none" or target.tensorrt is None or target.gpu is None:
        return {"status": "none", "reason": f"target {target.name} runs {target.runtime}"}
    spec = engine_spec(target, ctx.inputs["quantize"] / QDQ)
    host = Host.probe()
    blockers = build_blockers(
        host,
        arch=target.arch,
        engine_build=target.engine_build,
        trt_line=spec.trt_line,
        compute_capability=spec.compute_capability,
    )
    metrics = {
        "tensorrt_line": spec.trt_line,
        "compute_capability": spec.compute_capability,
        "precision": precision_mode(spec),
        "profile": spec.shapes,
        "workspace_mb": spec.workspace_mb,
        "dla_core": spec.dla_core,
        "host": host.describe(),
    }
    out = ctx.out / "engine"
    out.mkdir()
    if not blockers:
        return {**metrics, **_build_here(ctx, spec, host, out)}
    reason = ", ".join(blockers)
    if target.engine_build == "on-device":
        line = (
            f"deferred to the Jetson ({host.describe()}): run jetson/build_engine.sh on the device"
        )
        _write_metadata(out, spec, status="deferred", reason=reason)
    else:
        line = (
            f"deferred ({reason}): run engine/build_engine.sh on an {target.gpu.name} "
            f"with TensorRT {spec.trt_line}, or make build TARGET={target.name} on a GPU runner"
        )
        write_build_kit(
            out,
            spec,
            onnx_rel=f"../{QDQ.as_posix()}",
            extra={"status": "deferred", "reason": reason},
        )
    ctx.note(line)
    return {**metrics, "status": "deferred", "reason": reason}


def _build_here(ctx: StageContext, spec, host, out: Path) -> dict:
    """Build model.plan with the Python API, reusing the shared timing cache."""
    ctx.progress(f"building the TensorRT {host.tensorrt} engine (minutes)")
    sm = spec.compute_capability.replace(".", "")
    cache = ctx.cache_root / "tensorrt" / f"timing-{host.tensorrt}-sm{sm}.cache"
    info = build_engine(
        spec,
        ctx.inputs["quantize"] / QDQ,
        out / "model.plan",
        timing_cache=cache,
        dla_core=spec.dla_core,
    )
    _write_metadata(out, spec, status="built", reason="", **info)
    return {
        "status": "built",
        "tensorrt": info["tensorrt"],
        "build_seconds": info["build_seconds"],
        "io": info["io"],
        "plan_bytes": (out / "model.plan").stat().st_size,
    }


def _write_metadata(out: Path, spec, **extra: object) -> None:
    meta = {"engine": spec.to_dict(), **extra}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


STAGE = Stage(
    name="engine",
    run=run,
    needs=("quantize",),
    target_fields=(
        "name",
        "arch",
        "runtime",
        "gpu",
        "tensorrt",
        "profile",
        "engine_build",
        "onnx_max_opset",
    ),
    packages=("tensorrt", "onnx"),
)
