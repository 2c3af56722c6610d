"""Assemble dist/<recipe>-<target>/ from finished stage outputs, atomically."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from pipeline.manifest import MANIFEST, build_manifest, write_manifest
from pipeline.recipe import Recipe
from pipeline.stage import StageResult
from pipeline.target import Target


def _public(path: Path) -> bool:
    return not path.name.startswith("_")


def _up_to_date(dist: Path, stage_keys: dict[str, str]) -> bool:
    """Same stage keys and every listed file present with its size: nothing to do."""
    try:
        manifest = json.loads((dist / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("stages") != stage_keys:
        return False
    return all(
        (dist / f["path"]).is_file() and (dist / f["path"]).stat().st_size == f["size"]
        for f in manifest.get("files", [])
    )


def assemble_dist(dist: Path, recipe: Recipe, target: Target, stages: list[StageResult]) -> bool:
    """Copy every stage's public files into dist; returns False when already up to date."""
    stage_keys = {s.name: s.key for s in stages}
    if _up_to_date(dist, stage_keys):
        return False
    dist.parent.mkdir(parents=True, exist_ok=True)
    tmp = dist.parent / f".{dist.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for stage in stages:
            for item in sorted(filter(_public, stage.path.iterdir())):
                dest = tmp / item.name
                if item.is_dir():
                    shutil.copytree(item, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, dest)
        metrics = {s.name: s.metrics for s in stages}
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        recipe_info = {"name": recipe.name, "sha256": recipe.digest()}
        manifest = build_manifest(
            tmp, recipe=recipe_info, target=target.name, stages=stage_keys, metrics=metrics
        )
        write_manifest(tmp, manifest)
        _swap_in(tmp, dist)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def _swap_in(tmp: Path, dist: Path) -> None:
    old = dist.parent / f".{dist.name}.old-{uuid.uuid4().hex[:8]}"
    if dist.exists():
        os.rename(dist, old)
    os.rename(tmp, dist)
    shutil.rmtree(old, ignore_errors=True)
