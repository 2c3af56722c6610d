"""Cache keys: a stage's output is valid exactly for the inputs hashed here."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: keeps pydantic off the import path of sha256_file
    from pipeline.recipe import Recipe
    from pipeline.stage import Stage
    from pipeline.target import Target

KEY_SCHEMA = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@cache
def _module_source_hash(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return "missing"
    return sha256_file(Path(spec.origin))


def package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def stage_key_material(
    stage: Stage, recipe: Recipe, target: Target, upstream_keys: dict[str, str]
) -> dict:
    """Everything the stage's output depends on, as a JSON-ready dict."""
    modules = (f"pipeline.stages.{stage.name}", "pipeline.stage", *stage.modules)
    material = {
        "schema": KEY_SCHEMA,
        "stage": stage.name,
        "code": {m: _module_source_hash(m) for m in modules},
        "recipe": {f: recipe.field(f) for f in stage.recipe_fields},
        "target": {f: target.field(f) for f in stage.target_fields},
        "data": {s: sha256_file(recipe.data_path(s)) for s in stage.data_splits},
        "upstream": {n: upstream_keys[n] for n in stage.needs},
        "packages": {p: package_version(p) for p in stage.packages},
    }
    if "model" in stage.recipe_fields:
        # The recipe names the model; the weights behind the name may change.
        from pipeline.model_source import resolve_model

        material["model_fingerprint"] = resolve_model(recipe).fingerprint
    return material


def stage_key(material: dict) -> str:
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def build_key(stages: list[Stage], recipe: Recipe, target: Target) -> str:
    """One key for a whole build: every stage's key, chained as the runner chains them.

    It changes exactly when some stage would run again, so CI uses it to name the saved
    build cache (`edgepack cache-key`).
    """
    keys: dict[str, str] = {}
    for stage in stages:
        keys[stage.name] = stage_key(stage_key_material(stage, recipe, target, keys))
    return stage_key(keys)
