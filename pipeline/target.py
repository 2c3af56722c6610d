"""Target profiles: the hardware facts a build must respect (see DESIGN.md, Targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pipeline.recipe import Strict
from router.errors import UserError
from router.schema_io import load_model

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"


class GpuSpec(Strict):
    name: str
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    dla_cores: int = Field(0, ge=0)


class TensorRTSpec(Strict):
    line: str = Field(pattern=r"^\d+\.\d+$", description="TensorRT major.minor on the device")
    strongly_typed: bool = Field(False, description="TensorRT 11+: no precision flags")
    workspace_mb: int = Field(1024, gt=0)
    use_dla: bool = False


class ShapeRange(Strict):
    """min/opt/max of one dynamic axis in the TensorRT optimization profile."""

    min: int = Field(gt=0)
    opt: int = Field(gt=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ShapeRange:
        if not self.min <= self.opt <= self.max:
            raise ValueError("must satisfy min <= opt <= max")
        return self


class Profile(Strict):
    batch: ShapeRange
    sequence: ShapeRange


class Target(Strict):
    name: str
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    arch: Literal["x86_64", "aarch64"]
    runtime: Literal["onnxruntime", "tensorrt"]
    onnx_max_opset: int = Field(ge=11)
    gpu: GpuSpec | None = None
    tensorrt: TensorRTSpec | None = None
    jetpack: str | None = None
    engine_build: Literal["none", "host", "on-device"] = Field(
        description="none: no engine; host: build where a matching GPU is; on-device: Jetson"
    )
    profile: Profile
    packages: list[Literal["triton", "sagemaker", "jetson"]]

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        if self.runtime == "tensorrt" and (self.gpu is None or self.tensorrt is None):
            raise ValueError("a tensorrt target needs gpu and tensorrt sections")
        if self.engine_build != "none" and self.tensorrt is None:
            raise ValueError("engine_build needs a tensorrt section")
        return self

    def field(self, dotted: str) -> object:
        """Value at a dotted path; None inside an absent section (cpu has no `tensorrt`)."""
        value: object = self.model_dump(mode="json")
        for part in dotted.split("."):
            if value is None:
                return None
            value = value[part]  # type: ignore[index]
        return value


def available_targets() -> dict[str, Path]:
    """Every target name and alias → profile path."""
    import yaml

    found: dict[str, Path] = {}
    for path in sorted(TARGETS_DIR.glob("*.yaml")):
        found[path.stem] = path
        raw = yaml.safe_load(path.read_text()) or {}
        for alias in raw.get("aliases", []) or []:
            found[alias] = path
    return found


def load_target(name_or_path: str | Path) -> Target:
    """A target by name, alias or file path; unknown names list the known ones."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return load_model(Target, candidate)
    known = available_targets()
    if str(name_or_path) not in known:
        names = ", ".join(sorted(known))
        raise UserError(
            f"{TARGETS_DIR.name}/: {name_or_path}: unknown target (known: {names}, "
            "or a path to a target .yaml)"
        )
    return load_model(Target, known[str(name_or_path)])
