#!/usr/bin/env python3
"""Build the TensorRT engine on this device with the TensorRT Python API (edgepack).

Same settings as build_engine.sh (read from metadata.json). It first checks the device's
TensorRT version and GPU compute capability against the bundle and refuses a mismatch.

    python3 build_engine.py             build model.plan next to this script
    python3 build_engine.py --dry-run   check the device, print the build settings (JSON)
    python3 build_engine.py --dla N     DLA core N with GPU fallback; --no-dla: GPU only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from edgepack_engine.build import build_engine, build_settings  # noqa: E402
from edgepack_engine.capability import (  # noqa: E402
    device_problems,
    gpu_compute_capability,
    tensorrt_version,
)
from edgepack_engine.spec import EngineSpec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    meta = json.loads((HERE / "metadata.json").read_text())
    spec = EngineSpec.from_dict(meta["engine"])
    files = meta["files"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--dla", type=int, default=spec.dla_core, metavar="CORE")
    parser.add_argument("--no-dla", dest="dla", action="store_const", const=None)
    args = parser.parse_args(argv)
    if args.dla is not None and not 0 <= args.dla < spec.dla_cores:
        parser.error(f"--dla {args.dla}: this device has {spec.dla_cores} DLA core(s)")

    problems = device_problems(
        spec.trt_line, spec.compute_capability, tensorrt_version(), gpu_compute_capability()
    )
    if problems:
        print(
            f"build_engine.py: refusing to build for {spec.target}: "
            + "; ".join(problems)
            + ": build the bundle for this device's target profile",
            file=sys.stderr,
        )
        return 4
    onnx, plan, cache = (HERE / files[k] for k in ("onnx", "plan", "timing_cache"))
    if args.dry_run:
        print(
            json.dumps(
                {"onnx": str(onnx), "plan": str(plan), **build_settings(spec, args.dla, cache)},
                sort_keys=True,
            )
        )
        return 0
    print(f"building {plan} (takes minutes)", file=sys.stderr)
    info = build_engine(spec, onnx, plan, timing_cache=cache, dla_core=args.dla)
    print(json.dumps(info, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
