"""The code part of a real stage's cache key: every project file the stage imports, no other.

Edits are made to a copy of the project, imported by a subprocess, so that what is tested
is the key a fresh `edgepack build` would compute after someone changes that file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cache_key import stage_key_material
from pipeline.recipe import load_recipe
from pipeline.runner import STAGES
from pipeline.target import load_target
from tests.fixtures.recipes import write_recipe

REPO = Path(__file__).resolve().parent.parent

KEYS_AFTER_EDITS = """
import json, sys
from pathlib import Path
from pipeline.cache_key import stage_key, stage_key_material
from pipeline.recipe import load_recipe
from pipeline.runner import STAGES
from pipeline.target import load_target

recipe, target = load_recipe(sys.argv[1]), load_target("jetson")

def keys():
    return {
        s.name: stage_key(stage_key_material(s, recipe, target, dict.fromkeys(s.needs, "up")))
        for s in STAGES
    }

results = {"": keys()}
for rel in sys.argv[2:]:
    path = Path(rel)
    original = path.read_bytes()
    path.write_bytes(original + b"\\n# an edit\\n")
    results[rel] = keys()
    path.write_bytes(original)
results["restored"] = keys()
print(json.dumps(results))
"""

EDITS = {
    "pipeline/data.py": {"finetune", "export", "quantize", "router"},  # topics: eval split
    "pipeline/engine/spec.py": {"engine", "package"},
    "pipeline/model_source.py": {"finetune", "export"},
    "pipeline/engine/runtime.py": {"engine", "package"},  # shipped to the device as a file
    "pipeline/packaging/templates/infer.py": {"engine", "package"},
    "pipeline/packaging/templates/build_engine.sh": {"engine", "package"},
    "pipeline/stage.py": {"finetune", "export", "quantize", "engine", "package", "router"},
    "pipeline/publish/upload.py": set(),
    "pipeline/cli.py": set(),
}
"""File edited → the stages whose key must change; every other stage's must not."""


@pytest.fixture(scope="module")
def keys_after_edits(tmp_path_factory) -> dict[str, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("code-key")
    project = tmp / "project"
    for folder in ("pipeline", "router", "targets"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns("*.pyc"))
    model = tmp / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    recipe = write_recipe(tmp, model)
    done = subprocess.run(
        [sys.executable, "-c", KEYS_AFTER_EDITS, str(recipe), *EDITS],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("edited", sorted(EDITS))
def test_editing_a_file_reruns_exactly_the_stages_that_import_it(keys_after_edits, edited):
    before, after = keys_after_edits[""], keys_after_edits[edited]
    assert set(before) == {"finetune", "export", "quantize", "engine", "package", "router"}
    changed = {name for name in before if after[name] != before[name]}
    assert changed == EDITS[edited]


def test_the_key_depends_on_content_only(keys_after_edits):
    """Restoring the file restores the key: no mtimes, no absolute paths of the copy."""
    assert keys_after_edits["restored"] == keys_after_edits[""]


def test_code_material_names_files_relative_to_the_project(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    recipe = load_recipe(write_recipe(tmp_path, model))
    for stage in STAGES:
        material = stage_key_material(stage, recipe, load_target("cpu"), dict.fromkeys(stage.needs))
        assert f"pipeline/stages/{stage.name}.py" in material["code"]
        assert all(not Path(p).is_absolute() and "__pycache__" not in p for p in material["code"])
