#!/usr/bin/env bash
# NVIDIA ModelOpt's ONNX quantizer in its own venv (benchmarks/modelopt/.venv, gitignored) for
# `benchmarks/quantize.py --modelopt`; never the project's .venv: nvidia-modelopt[onnx] pins
# onnx ~=1.21 and onnxruntime-gpu ~=1.24 and pulls torch >= 2.8 and cupy-cuda12x (several GB).
# Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! "$here/.venv/bin/python" -c "import modelopt.onnx.quantization" 2>/dev/null; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --upgrade pip
  "$here/.venv/bin/pip" install -q "nvidia-modelopt[onnx]==${MODELOPT_VERSION:-0.47.0}"
fi
echo "modelopt: $("$here/.venv/bin/pip" show nvidia-modelopt | grep ^Version)"
