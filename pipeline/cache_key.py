"""Cache keys: a stage's output is valid exactly for the inputs hashed here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from pipeline.code_closure import source_files
from pipeline.fingerprint import package_version, sha256_file
from pipeline.model_source import resolve_model
from pipeline.recipe import Recipe
from pipeline.stage import Stage
from pipeline.target import Target

KEY_SCHEMA = 2


def code_hashes(stage: Stage) -> dict[str, str]:
    """sha256 of every file in the import closure of the stage's module (see code_closure)."""
    files = source_files(stage.run.__module__)
    return {rel: sha256_file(path) for rel, path in sorted(files.items())}


def stage_key_material(
    stage: Stage, recipe: Recipe, target: Target, upstream_keys: dict[str, str]
) -> dict:
    """Everything the stage's output depends on, as a JSON-ready dict."""
    material = {
        "schema": KEY_SCHEMA,
        "stage": stage.name,
        "code": code_hashes(stage),
        "recipe": {f: recipe.field(f) for f in stage.recipe_fields},
        "target": {f: target.field(f) for f in stage.target_fields},
        "data": {s: sha256_file(recipe.data_path(s)) for s in stage.data_splits},
        "upstream": {n: upstream_keys[n] for n in stage.needs},
        "packages": {p: package_version(p) for p in stage.packages},
    }
    if "model" in stage.recipe_fields:
        # The recipe names the model; the weights behind the name may change.
        material["model_fingerprint"] = resolve_model(recipe).fingerprint
    return material


def stage_key(material: dict) -> str:
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def build_key(stages: Sequence[Stage], recipe: Recipe, target: Target) -> str:
    """One key for a whole build: every stage's key, chained as the runner chains them.

    It changes exactly when some stage would run again, so CI uses it to name the saved
    build cache (`edgepack cache-key`).
    """
    keys: dict[str, str] = {}
    for stage in stages:
        keys[stage.name] = stage_key(stage_key_material(stage, recipe, target, keys))
    return stage_key(keys)
