"""Cache keys and re-run rules of the stage runner, on small pure-Python stages.

The stages here write real files and count their runs; what is asserted is which ones the
runner re-ran after each change (recipe field, target field, data, upstream, flags).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.manifest import verify_dist
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stage import Stage, StageContext
from pipeline.target import Target, load_model, load_target
from router.errors import UserError
from tests.fixtures.recipes import write_recipe

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs() -> Counter:
    return Counter()


@pytest.fixture
def stages(runs: Counter) -> list[Stage]:
    """train (recipe lora + data) → convert (target opset) → bundle (nothing of its own)."""

    def train(ctx: StageContext) -> dict:
        runs["train"] += 1
        (ctx.out / "adapter").mkdir()
        (ctx.out / "adapter" / "weights.txt").write_text(f"r={ctx.recipe.lora.r}\n")
        (ctx.out / "_private.txt").write_text("cache only\n")
        return {"r": ctx.recipe.lora.r}

    def convert(ctx: StageContext) -> dict:
        runs["convert"] += 1
        weights = (ctx.inputs["train"] / "adapter" / "weights.txt").read_text()
        opset = min(ctx.recipe.export.opset, ctx.target.onnx_max_opset)
        (ctx.out / "model.txt").write_text(f"{weights}opset={opset}\n")
        return {"opset": opset, "upstream_r": ctx.upstream_metrics["train"]["r"]}

    def bundle(ctx: StageContext) -> dict:
        runs["bundle"] += 1
        (ctx.out / "bundle.txt").write_text((ctx.inputs["convert"] / "model.txt").read_text())
        return {}

    return [
        Stage("train", train, recipe_fields=("lora",), data_splits=("train",)),
        Stage("convert", convert, needs=("train",), recipe_fields=("export.opset",),
              target_fields=("onnx_max_opset",)),
        Stage("bundle", bundle, needs=("convert",)),
    ]  # fmt: skip


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    return write_recipe(tmp_path / "recipe", "unused-model-dir")


def build(recipe_path: Path, target: str | Target, stages: list[Stage], tmp_path: Path, **kw):
    loaded_target = load_target(target) if isinstance(target, str) else target
    return run_build(
        load_recipe(recipe_path),
        loaded_target,
        out_root=tmp_path / "dist",
        cache_root=tmp_path / "cache",
        stages=stages,
        **kw,
    )


def target_like(name: str, tmp_path: Path, **changes: object) -> Target:
    raw = yaml.safe_load((REPO / "targets" / "cpu.yaml").read_text())
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_model(Target, path)


def test_second_build_runs_nothing_and_dist_is_complete(recipe_path, stages, runs, tmp_path):
    first = build(recipe_path, "cpu", stages, tmp_path)
    assert first.ran == ["train", "convert", "bundle"]
    manifest_before = (first.dist / "manifest.json").read_text()
    second = build(recipe_path, "cpu", stages, tmp_path)
    assert second.ran == []
    assert runs == {"train": 1, "convert": 1, "bundle": 1}
    assert (second.dist / "manifest.json").read_text() == manifest_before  # not reassembled
    assert verify_dist(second.dist) == []
    files = {p.relative_to(second.dist).as_posix() for p in second.dist.rglob("*")}
    assert {"adapter/weights.txt", "model.txt", "bundle.txt", "metrics.json"} <= files
    assert "_private.txt" not in files and "_metrics.json" not in files
    metrics = json.loads((second.dist / "metrics.json").read_text())
    assert metrics["convert"] == {"opset": 17, "upstream_r": 4}


def test_target_change_reruns_only_stages_that_read_target_fields(
    recipe_path, stages, runs, tmp_path
):
    build(recipe_path, "cpu", stages, tmp_path)
    # Same opset cap, other profile: no stage reads the changed fields.
    profile = {"batch": {"min": 1, "opt": 64, "max": 128},
               "sequence": {"min": 8, "opt": 64, "max": 128}}  # fmt: skip
    same_cap = target_like("cpu-big-batches", tmp_path, profile=profile)
    assert build(recipe_path, same_cap, stages, tmp_path).ran == []
    # jetson-xavier caps the opset at 17 (cpu: 21): convert and what follows re-run.
    xavier = build(recipe_path, "jetson-xavier", stages, tmp_path)
    assert xavier.ran == ["convert", "bundle"]
    assert runs["train"] == 1
    assert xavier.dist.name == "tiny-jetson-xavier"


def test_recipe_field_change_reruns_that_stage_and_everything_after(
    recipe_path, stages, runs, tmp_path
):
    build(recipe_path, "cpu", stages, tmp_path)
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["query"]}
    changed = write_recipe(recipe_path.parent, "unused-model-dir", lora=lora)
    result = build(changed, "cpu", stages, tmp_path)
    assert result.ran == ["train", "convert", "bundle"]
    assert (result.dist / "bundle.txt").read_text().startswith("r=8")
    # Changing back finds the first outputs still cached.
    original = write_recipe(recipe_path.parent, "unused-model-dir")
    assert build(original, "cpu", stages, tmp_path).ran == []
    assert (result.dist / "bundle.txt").read_text().startswith("r=4")


def test_export_field_change_keeps_upstream(recipe_path, stages, tmp_path):
    build(recipe_path, "cpu", stages, tmp_path)
    changed = write_recipe(recipe_path.parent, "m", export={"opset": 18, "atol": 0.0001})
    assert build(changed, "cpu", stages, tmp_path).ran == ["convert", "bundle"]


def test_data_change_reruns_readers(recipe_path, stages, tmp_path):
    build(recipe_path, "cpu", stages, tmp_path)
    train = recipe_path.parent / "data" / "train.jsonl"
    train.write_text(train.read_text() + '{"text": "one more", "label": "public"}\n')
    assert build(recipe_path, "cpu", stages, tmp_path).ran == ["train", "convert", "bundle"]
    calib = recipe_path.parent / "data" / "calib.jsonl"
    calib.write_text(calib.read_text() + '{"text": "unread", "label": "public"}\n')
    assert build(recipe_path, "cpu", stages, tmp_path).ran == []


def test_force_from_and_until(recipe_path, stages, runs, tmp_path):
    build(recipe_path, "cpu", stages, tmp_path)
    assert build(recipe_path, "cpu", stages, tmp_path, force=True).ran == [
        "train", "convert", "bundle"]  # fmt: skip
    assert build(recipe_path, "cpu", stages, tmp_path, from_stage="convert").ran == [
        "convert", "bundle"]  # fmt: skip
    partial = build(recipe_path, "cpu", stages, tmp_path, until="convert", force=True)
    assert [s.name for s in partial.stages] == ["train", "convert"]
    assert not (partial.dist / "bundle.txt").exists()
    assert runs == {"train": 3, "convert": 4, "bundle": 3}
    with pytest.raises(UserError, match="--from: unknown stage 'quantise'"):
        build(recipe_path, "cpu", stages, tmp_path, from_stage="quantise")
    with pytest.raises(UserError, match="--until: unknown stage"):
        build(recipe_path, "cpu", stages, tmp_path, until="nope")


def test_finetune_key_covers_its_code_fields_and_model_files(tmp_path):
    """A real stage's key: its source, the recipe fields it reads, the model's files."""
    from pipeline.cache_key import stage_key, stage_key_material
    from pipeline.stages.finetune import STAGE

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    recipe = load_recipe(write_recipe(tmp_path, model))
    material = stage_key_material(STAGE, recipe, load_target("cpu"), {})
    assert "pipeline/stages/finetune.py" in material["code"]
    assert set(material["recipe"]) == {"model", "task", "labels", "positive_label", "lora",
                                       "training", "eval.min_recall"}  # fmt: skip
    assert material["target"] == {}
    before = stage_key(material)
    (model / "model.safetensors").write_bytes(b"new weights")
    after = stage_key(stage_key_material(STAGE, recipe, load_target("jetson"), {}))
    assert after != before


def test_cache_keys_of_every_stage_need_no_heavy_import():
    """A no-op rebuild must stay fast: stage modules import torch & co. only inside run()."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from pipeline import cli\n"
        "from pipeline.cache_key import stage_key, stage_key_material\n"
        "from pipeline.recipe import load_recipe\n"
        "from pipeline.runner import STAGES\n"
        "from pipeline.target import load_target\n"
        "recipe, target, keys = load_recipe(sys.argv[1]), load_target('jetson'), {}\n"
        "for stage in STAGES:\n"
        "    keys[stage.name] = stage_key(stage_key_material(stage, recipe, target, keys))\n"
        "heavy = ('torch', 'transformers', 'peft', 'optimum', 'onnxruntime', 'tensorrt')\n"
        "import json\n"
        "print(json.dumps([sorted(keys), [m for m in heavy if m in sys.modules]]))\n"
    )
    recipe = REPO / "recipes" / "sensitivity-minilm.yaml"
    done = subprocess.run(
        [sys.executable, "-c", probe, str(recipe)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    stages, heavy = json.loads(done.stdout)
    assert {"finetune", "export"} <= set(stages)
    assert heavy == [], f"imported while computing cache keys: {heavy}"
