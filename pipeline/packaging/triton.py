"""A Triton model repository: `<name>/config.pbtxt` + `1/model.onnx` or `1/model.plan`.

The config is built as Triton's own ModelConfig protobuf (tritonclient ships the
generated module) and written in text format, so it is valid by construction.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

from pipeline.engine.target_spec import onnx_io
from pipeline.target import Target

ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    3: "TYPE_INT8",
    2: "TYPE_UINT8",
}
TRT_TO_TRITON = {
    "FLOAT": "TYPE_FP32",
    "HALF": "TYPE_FP16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "INT8": "TYPE_INT8",
    "BOOL": "TYPE_BOOL",
}


def model_config_pb2() -> ModuleType:
    """tritonclient's ModelConfig protobuf module, without needing grpcio installed."""
    try:
        from tritonclient.grpc import model_config_pb2 as module
    except (ImportError, RuntimeError):
        import tritonclient

        path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
        spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
        assert spec is not None and spec.loader is not None, f"{path} missing"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def model_name(recipe_name: str) -> str:
    """A Triton model (folder) name from the recipe name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", recipe_name)


def build_config(
    name: str,
    target: Target,
    inputs: list[dict],
    outputs: list[dict],
    *,
    backend: str,
    io_dtypes: dict[str, str] | None = None,
    labels_file: str | None = None,
):
    """ModelConfig for a batched text classifier; dims exclude the batch dimension."""
    pb = model_config_pb2()
    gpu = target.runtime == "tensorrt"
    config = pb.ModelConfig(name=name, max_batch_size=target.profile.batch.max)
    if backend == "tensorrt":
        config.platform = "tensorrt_plan"
    else:
        config.backend = "onnxruntime"
        config.platform = "onnxruntime_onnx"
    for value in inputs:
        config.input.add(
            name=value["name"], data_type=_dtype(value, io_dtypes), dims=value["dims"][1:]
        )
    for value in outputs:
        out = config.output.add(
            name=value["name"], data_type=_dtype(value, io_dtypes), dims=value["dims"][1:]
        )
        if labels_file:
            out.label_filename = labels_file
    opt = target.profile.batch.opt
    config.dynamic_batching.preferred_batch_size.extend([opt] if opt > 1 else [])
    config.dynamic_batching.max_queue_delay_microseconds = 500
    kind = pb.ModelInstanceGroup.KIND_GPU if gpu else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(count=1, kind=kind)
    return config


def _dtype(value: dict, io_dtypes: dict[str, str] | None) -> int:
    pb = model_config_pb2()
    if io_dtypes and value["name"] in io_dtypes:  # a built engine's own I/O types win
        return pb.DataType.Value(TRT_TO_TRITON[io_dtypes[value["name"]]])
    return pb.DataType.Value(ONNX_TO_TRITON[value["elem_type"]])


def config_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str):
    """Parse config.pbtxt with Triton's schema (raises on anything Triton would reject)."""
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2().ModelConfig())


def write_repository(
    root: Path,
    name: str,
    target: Target,
    *,
    onnx_for_io: Path,
    model_file: Path | None,
    labels: list[str],
    io_dtypes: dict[str, str] | None = None,
) -> Path:
    """root/<name>/{config.pbtxt, labels.txt, 1/model.*}; returns the model folder.

    `model_file` is the ONNX model (onnxruntime backend) or the engine (tensorrt backend);
    None for a GPU target whose engine is still to be built on the device.
    """
    backend = "tensorrt" if target.runtime == "tensorrt" else "onnxruntime"
    inputs, outputs, _opset = onnx_io(onnx_for_io)
    folder = root / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    config = build_config(
        name,
        target,
        inputs,
        outputs,
        backend=backend,
        io_dtypes=io_dtypes,
        labels_file="labels.txt",
    )
    text = config_text(config)
    parse_config(text)
    (folder / "config.pbtxt").write_text(text)
    if model_file is not None:
        dest = "model.plan" if backend == "tensorrt" else "model.onnx"
        shutil.copyfile(model_file, folder / "1" / dest)
    return folder
