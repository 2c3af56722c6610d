"""EngineSpec: everything a TensorRT build needs, as plain JSON-ready data.

It is written into the bundle's metadata.json, so the host (flag builder, scripts) and
the device (build_engine.py) read the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class EngineSpec:
    target: str
    trt_line: str
    """TensorRT major.minor the engine is for (engines are not portable across versions)."""
    compute_capability: str
    strongly_typed: bool
    workspace_mb: int
    inputs: tuple[str, ...]
    shapes: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """{"min"|"opt"|"max": {input name: [batch, sequence]}}"""
    dla_core: int | None = None
    dla_cores: int = 0

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = self.trt_line.split(".")[:2]
        return int(major), int(minor)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EngineSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["inputs"] = tuple(known.get("inputs", ()))
        return cls(**known)


def profile_shapes(
    inputs: tuple[str, ...], batch: tuple[int, int, int], sequence: tuple[int, int, int]
) -> dict[str, dict[str, list[int]]]:
    """min/opt/max [batch, sequence] for every (batch, sequence) input of a text model."""
    return {
        level: {name: [batch[i], sequence[i]] for name in inputs}
        for i, level in enumerate(("min", "opt", "max"))
    }
