"""The Jetson bundle: everything the device needs to build its own engine and classify.

jetson/ holds the Q/DQ model (opset checked against the device's TensorRT), the INT8
model and tokenizer for the ONNX Runtime fallback, the build kit (build_engine.sh/.py,
metadata.json, edgepack_engine/), infer.py, edgepack_signature.py (which infer.py and
build_engine.sh run when EDGEPACK_PUBLIC_KEY is set) and a README; jetson.tar.gz is the
same tree, packed reproducibly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import signature
from pipeline.engine.flags import precision_mode
from pipeline.engine.target_spec import engine_spec, onnx_io
from pipeline.errors import StageFailed
from pipeline.packaging.device_build import TEMPLATES, render, write_build_kit
from pipeline.packaging.tarball import write_tar_gz
from pipeline.recipe import Recipe
from pipeline.target import Target

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
)


def write_bundle(
    dest: Path, recipe: Recipe, target: Target, *, onnx_dir: Path, qdq: Path, int8: Path
) -> Path:
    """Write dest/ (the bundle folder); returns it."""
    if target.tensorrt is None or target.gpu is None:
        raise StageFailed("package", f"target {target.name} has no TensorRT section for a bundle")
    _inputs, _outputs, opset = onnx_io(qdq)
    if opset > target.onnx_max_opset:
        raise StageFailed(
            "package",
            f"{qdq.name}: opset {opset} > {target.name}'s onnx_max_opset {target.onnx_max_opset}",
        )
    dest.mkdir(parents=True)
    shutil.copyfile(qdq, dest / "model.qdq.onnx")
    shutil.copyfile(int8, dest / "model.int8.onnx")
    for name in TOKENIZER_FILES:
        if (onnx_dir / name).is_file():
            shutil.copyfile(onnx_dir / name, dest / name)
    spec = engine_spec(target, qdq)
    write_build_kit(
        dest,
        spec,
        onnx_rel="model.qdq.onnx",
        extra={
            "target": target.name,
            "recipe": recipe.name,
            "labels": recipe.labels,
            "max_length": target.profile.sequence.max,
            "jetpack": target.jetpack,
            "files": {"onnx_int8": "model.int8.onnx"},
        },
    )
    shutil.copyfile(TEMPLATES / "infer.py", dest / "infer.py")
    (dest / "infer.py").chmod(0o755)
    shutil.copyfile(Path(signature.__file__), dest / "edgepack_signature.py")
    p = target.profile
    (dest / "README.md").write_text(
        render(
            "README.md",
            {
                "NAME": recipe.name,
                "TARGET": target.name,
                "DESCRIPTION": target.description,
                "GPU": target.gpu.name,
                "SM": target.gpu.compute_capability.replace(".", ""),
                "JETPACK": target.jetpack or "?",
                "TRT_LINE": target.tensorrt.line,
                "PRECISION": precision_mode(spec),
                "OPSET": opset,
                "LABELS": ", ".join(recipe.labels),
                "DLA_CORES": target.gpu.dla_cores,
                "BATCH": f"{p.batch.min}/{p.batch.opt}/{p.batch.max}",
                "SEQUENCE": f"{p.sequence.min}/{p.sequence.opt}/{p.sequence.max}",
            },
        )
    )
    return dest


def write_bundle_tarball(bundle: Path, dest: Path) -> Path:
    """jetson.tar.gz with the bundle under `jetson/` (unpack with `tar xzf`)."""
    return write_tar_gz(bundle, dest, prefix=bundle.name)
