"""Run a recipe's stages for a target: cached, atomic, with visible progress.

A stage's output lives in `<cache>/stages/<stage>/<key>/` and is only ever created by
renaming a finished temp folder, so a killed build never leaves a valid-looking output.
`dist/<recipe>-<target>/` is then assembled from the public files of every stage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from pipeline.assemble import assemble_dist
from pipeline.cache_key import stage_key, stage_key_material
from pipeline.chat.recipe import ChatRecipe, is_chat
from pipeline.recipe import Recipe
from pipeline.stage import BuildResult, Reporter, Stage, StageContext, StageResult
from pipeline.stages import (
    chat_export,
    chat_finetune,
    chat_package,
    chat_quantize,
    chat_router,
    engine,
    export,
    finetune,
    package,
    quantize,
    router,
)
from pipeline.target import Target
from router.errors import UserError

STAGES = (finetune.STAGE, export.STAGE, quantize.STAGE, engine.STAGE, package.STAGE, router.STAGE)
"""The classifier's stages, in data-flow order (see DESIGN.md)."""
CHAT_STAGES = (
    chat_finetune.STAGE,
    chat_export.STAGE,
    chat_quantize.STAGE,
    chat_package.STAGE,
    chat_router.STAGE,
)
"""`task: text-generation`'s stages, in data-flow order."""
METRICS_FILE = "_metrics.json"
KEY_FILE = "_key.json"


def stages_for(recipe: Recipe | ChatRecipe) -> list[Stage]:
    """The stages of the recipe's task."""
    return list(CHAT_STAGES if is_chat(recipe) else STAGES)


def default_cache_root() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE", ".cache/edgepack")).resolve()


def select_stages(stages: list[Stage], until: str | None) -> list[Stage]:
    names = [s.name for s in stages]
    if until is None:
        return stages
    if until not in names:
        raise UserError(f"--until: unknown stage {until!r} (stages: {', '.join(names)})")
    return stages[: names.index(until) + 1]


def run_build(
    recipe: Recipe | ChatRecipe,
    target: Target,
    *,
    out_root: Path = Path("dist"),
    cache_root: Path | None = None,
    force: bool = False,
    from_stage: str | None = None,
    until: str | None = None,
    reporter: Reporter | None = None,
    stages: list[Stage] | None = None,
) -> BuildResult:
    """Build `recipe` for `target`; returns what ran and where `dist/` is."""
    reporter = reporter or Reporter()
    cache_root = (cache_root or default_cache_root()).resolve()
    sweep_stale_tmp(cache_root)
    stages = select_stages(stages_for(recipe) if stages is None else stages, until)
    names = [s.name for s in stages]
    if from_stage is not None and from_stage not in names:
        raise UserError(f"--from: unknown stage {from_stage!r} (stages: {', '.join(names)})")
    rerun_from = 0 if force else names.index(from_stage) if from_stage else len(names)

    dist = out_root.resolve() / f"{recipe.name}-{target.name}"
    result = BuildResult(dist=dist)
    keys: dict[str, str] = {}
    paths: dict[str, Path] = {}
    metrics: dict[str, dict] = {}
    for index, stage in enumerate(stages):
        material = stage_key_material(stage, recipe, target, keys)
        key = stage_key(material)
        final = cache_root / "stages" / stage.name / key
        done = (final / METRICS_FILE).is_file() and index < rerun_from
        reporter.stage_started(stage.name, cached=done)
        started = time.perf_counter()
        if done:
            stage_metrics = json.loads((final / METRICS_FILE).read_text())
        else:

            def note(line: str, _stage: str = stage.name) -> None:
                result.notes.append(f"{_stage}: {line}")
                reporter.note(_stage, line)

            stage_metrics = _run_stage(
                stage,
                StageContext(
                    recipe=recipe,
                    target=target,
                    out=Path(),
                    inputs={n: paths[n] for n in stage.needs},
                    upstream_metrics={n: metrics[n] for n in stage.needs},
                    cache_root=cache_root / "shared",
                    note=note,
                    progress=lambda msg, _s=stage.name: reporter.stage_progress(_s, msg),
                ),
                material,
                final,
            )
        stage_result = StageResult(
            stage.name, key, final, done, time.perf_counter() - started, stage_metrics
        )
        result.stages.append(stage_result)
        reporter.stage_finished(stage_result)
        keys[stage.name], paths[stage.name], metrics[stage.name] = key, final, stage_metrics

    assemble_dist(dist, recipe, target, result.stages)
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_tmp(cache_root: Path) -> list[Path]:
    """Delete temp folders left by builds that were killed (their pid is gone).

    Temp names are `<stage>-<pid>-<rand>`; a live pid may be a concurrent build, so its
    folders stay. They never count as output either way: only renamed folders do.
    """
    removed = []
    tmp_root = cache_root / "tmp"
    for entry in tmp_root.iterdir() if tmp_root.is_dir() else []:
        parts = entry.name.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _run_stage(stage: Stage, ctx: StageContext, material: dict, final: Path) -> dict:
    """Run into a temp folder, then rename it into place (the commit point)."""
    tmp_root = final.parent.parent.parent / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f"{stage.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    ctx.out = tmp
    ctx.cache_root.mkdir(parents=True, exist_ok=True)
    try:
        stage_metrics = stage.run(ctx) or {}
        (tmp / KEY_FILE).write_text(json.dumps(material, indent=1, sort_keys=True))
        (tmp / METRICS_FILE).write_text(json.dumps(stage_metrics, indent=1, sort_keys=True))
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # --force / --from: replace the old output
            trash = tmp_root / f"old{stage.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return stage_metrics
