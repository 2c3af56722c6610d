"""What a stage is: a function of declared inputs that fills one output folder.

A stage never reads anything it did not declare: the runner hashes exactly the declared
recipe fields, target fields, data splits, upstream outputs and package versions into its
cache key, with every project file that the module defining `run` imports (see
code_closure.py), so its code needs no declaration. Files whose name starts with `_`
stay in the cache (private to later stages); everything else is copied into `dist/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.recipe import Recipe
from pipeline.target import Target


@dataclass
class StageContext:
    recipe: Recipe
    target: Target
    out: Path
    """Empty temp folder the stage writes into; renamed into the cache on success."""
    inputs: dict[str, Path]
    """Upstream stage name → its finished output folder."""
    upstream_metrics: dict[str, dict]
    cache_root: Path
    """Shared, persistent cache (e.g. a TensorRT timing cache) under the build cache."""
    note: Callable[[str], None]
    """Show one line to the user (deferred builds, chosen variants, warnings)."""
    progress: Callable[[str], None] = field(default=lambda _msg: None)
    """Update the stage's status text (long work: epochs, calibration, candidates)."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], dict]
    """Writes into ctx.out and returns the stage's metrics (JSON-ready)."""
    needs: tuple[str, ...] = ()
    recipe_fields: tuple[str, ...] = ()
    target_fields: tuple[str, ...] = ()
    data_splits: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    """The stage's finished output folder in the cache."""
    cached: bool
    seconds: float
    metrics: dict


@dataclass
class BuildResult:
    dist: Path
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.stages if not s.cached]


class Reporter:
    """How the runner talks to the user; the CLI supplies a rich or a plain one."""

    def stage_started(self, name: str, cached: bool) -> None: ...
    def stage_progress(self, name: str, message: str) -> None: ...
    def stage_finished(self, result: StageResult) -> None: ...
    def note(self, stage: str, line: str) -> None: ...
