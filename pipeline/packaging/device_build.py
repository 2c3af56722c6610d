"""The deferred engine build kit: build_engine.sh, build_engine.py, metadata.json and
the `edgepack_engine/` modules they run, written into a folder that holds (or points to)
the Q/DQ model. Used by the `engine` stage (deferred A100 build) and the Jetson bundle.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pipeline.engine.build
import pipeline.engine.capability
import pipeline.engine.flags
import pipeline.engine.runtime
import pipeline.engine.spec
from pipeline.engine.flags import dla_args, trtexec_args
from pipeline.engine.spec import EngineSpec

TEMPLATES = Path(__file__).resolve().parent / "templates"
SHIPPED = (
    pipeline.engine.spec,
    pipeline.engine.flags,
    pipeline.engine.capability,
    pipeline.engine.build,
    pipeline.engine.runtime,
)
"""Copied verbatim as `edgepack_engine/`: standard library and relative imports only."""
PLAN = "model.plan"
TIMING_CACHE = "timing.cache"
_SAFE_ARG = re.compile(r"^[A-Za-z0-9=:,./_+-]*$")


def render(template: str, values: dict[str, object]) -> str:
    """Replace @@KEY@@ placeholders; a placeholder left over is a bug, not output."""
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise ValueError(f"{template}: unfilled placeholders {sorted(set(left))}")
    return text


def _bash_word(arg: str) -> str:
    """A trtexec argument as a double-quoted bash word; paths are relative to $HERE."""
    rest = arg.replace("{HERE}", "")
    if not _SAFE_ARG.match(rest):
        raise ValueError(f"unexpected characters in trtexec argument {arg!r}")
    return '"' + arg.replace("{HERE}", "${HERE}") + '"'


def build_script(spec: EngineSpec, onnx_rel: str) -> str:
    """build_engine.sh for this spec, with the trtexec flags from pipeline.engine.flags."""
    args = trtexec_args(
        spec,
        onnx=f"{{HERE}}/{onnx_rel}",
        engine=f"{{HERE}}/{PLAN}",
        timing_cache=f"{{HERE}}/{TIMING_CACHE}",
        dla=False,
    )
    return render(
        "build_engine.sh",
        {
            "TARGET": spec.target,
            "TRT_LINE": spec.trt_line,
            "CC": spec.compute_capability,
            "SM": spec.compute_capability.replace(".", ""),
            "DLA_CORES": spec.dla_cores,
            "DLA_DEFAULT": "" if spec.dla_core is None else spec.dla_core,
            "ARGS": "\n".join(f"  {_bash_word(a)}" for a in args),
            "DLA_ARGS": " ".join(_bash_word(a) for a in dla_args("{HERE}")).replace(
                "${HERE}", "${DLA_CORE}"
            ),
            "PLAN": PLAN,
        },
    )


def write_build_kit(dest: Path, spec: EngineSpec, *, onnx_rel: str, extra: dict) -> dict:
    """Write the kit into `dest`; returns the metadata written to metadata.json."""
    dest.mkdir(parents=True, exist_ok=True)
    files = {"onnx": onnx_rel, "plan": PLAN, "timing_cache": TIMING_CACHE}
    meta = {"engine": spec.to_dict(), **extra, "files": {**files, **extra.get("files", {})}}
    (dest / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    script = dest / "build_engine.sh"
    script.write_text(build_script(spec, onnx_rel))
    shutil.copyfile(TEMPLATES / "build_engine.py", dest / "build_engine.py")
    for path in (script, dest / "build_engine.py"):
        path.chmod(0o755)
    package = dest / "edgepack_engine"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text('"""TensorRT build/run helpers copied from edgepack."""\n')
    for module in SHIPPED:
        source = Path(module.__file__)
        shutil.copyfile(source, package / source.name)
    return meta
