"""ModelOpt's ONNX INT8 PTQ on one model; runs under benchmarks/modelopt/.venv's Python.

Imports nothing from the project (its venv has none of the project's packages): the caller
passes the FP32 model, the calibration feeds as an .npz and the nodes to keep in float.

    benchmarks/modelopt/.venv/bin/python benchmarks/modelopt/quantize_int8.py \\
        --onnx model.onnx --calib calib.npz --method entropy --out model.modelopt.onnx
"""

from __future__ import annotations

import argparse

import numpy as np
from modelopt.onnx.quantization import quantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--calib", required=True, help=".npz: one array per model input")
    parser.add_argument("--method", choices=("max", "entropy"), default="entropy")
    parser.add_argument("--exclude", nargs="*", default=[], help="node-name regexes in float")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    quantize(
        onnx_path=args.onnx,
        quantize_mode="int8",
        calibration_data=dict(np.load(args.calib)),
        calibration_method=args.method,
        calibration_eps=["cpu"],
        nodes_to_exclude=args.exclude,
        high_precision_dtype="fp32",  # compared on ONNX Runtime CPU against FP32
        output_path=args.out,
    )


if __name__ == "__main__":
    main()
