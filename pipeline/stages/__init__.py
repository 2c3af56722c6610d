"""The build's stages, in data-flow order (see DESIGN.md).

Each module defines `STAGE`; importing them must stay cheap (heavy imports go inside
the stage function) so `edgepack --help` starts instantly.
"""

from __future__ import annotations

import importlib

from pipeline.stage import Stage

ORDER = ("finetune", "export", "quantize", "engine", "package", "router")


def all_stages() -> list[Stage]:
    """The stages that exist in this checkout, in order."""
    stages = []
    for name in ORDER:
        try:
            module = importlib.import_module(f"pipeline.stages.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipeline.stages.{name}":
                continue
            raise
        stages.append(module.STAGE)
    return stages
