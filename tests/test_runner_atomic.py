"""A stage that fails or is killed mid-write leaves nothing that a later build trusts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.errors import StageFailed
from pipeline.recipe import load_recipe
from pipeline.runner import METRICS_FILE, run_build
from pipeline.stage import Stage, StageContext
from pipeline.target import load_target
from tests.fixtures.recipes import write_recipe

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def writer(ctx: StageContext) -> dict:
    (ctx.out / "model.bin").write_bytes(b"complete")
    return {"ok": True}


def valid_outputs(cache: Path, stage: str) -> list[Path]:
    folder = cache / "stages" / stage
    return [p for p in folder.iterdir() if (p / METRICS_FILE).is_file()] if folder.exists() else []


def build(recipe: Path, cache: Path, out: Path, stages: list[Stage]):
    return run_build(
        load_recipe(recipe), load_target("cpu"), out_root=out, cache_root=cache, stages=stages
    )


def test_stage_that_raises_leaves_no_output_and_reruns(tmp_path):
    recipe = write_recipe(tmp_path / "r", "m")
    cache, out = tmp_path / "cache", tmp_path / "dist"

    def half_then_fail(ctx: StageContext) -> dict:
        (ctx.out / "model.bin").write_bytes(b"half")
        raise StageFailed("write", "accuracy gate failed")

    with pytest.raises(StageFailed, match="accuracy gate"):
        build(recipe, cache, out, [Stage("write", half_then_fail, recipe_fields=("lora",))])
    assert valid_outputs(cache, "write") == []
    assert list((cache / "tmp").iterdir()) == []  # the temp folder was removed
    assert not (out / "tiny-cpu").exists()  # dist is only assembled after every stage

    result = build(recipe, cache, out, [Stage("write", writer, recipe_fields=("lora",))])
    assert result.ran == ["write"]
    assert (result.dist / "model.bin").read_bytes() == b"complete"


def test_failed_downstream_stage_keeps_upstream_and_old_dist(tmp_path):
    recipe = write_recipe(tmp_path / "r", "m")
    cache, out = tmp_path / "cache", tmp_path / "dist"
    first = build(recipe, cache, out, [Stage("write", writer)])
    manifest = (first.dist / "manifest.json").read_text()

    def broken(ctx: StageContext) -> dict:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        build(recipe, cache, out, [Stage("write", writer), Stage("next", broken, needs=("write",))])
    assert (first.dist / "manifest.json").read_text() == manifest  # old dist untouched
    again = build(recipe, cache, out, [Stage("write", writer), Stage("next", writer)])
    assert again.ran == ["next"]


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pipeline.recipe import load_recipe
    from pipeline.runner import run_build
    from pipeline.stage import Stage
    from pipeline.target import load_target

    def slow_writer(ctx):
        (ctx.out / "model.bin").write_bytes(b"half")
        Path(sys.argv[3]).write_text("writing")
        time.sleep(120)
        (ctx.out / "model.bin").write_bytes(b"complete")
        return {"ok": True}

    run_build(load_recipe(sys.argv[1]), load_target("cpu"), out_root=Path(sys.argv[2]) / "dist",
              cache_root=Path(sys.argv[2]) / "cache", stages=[Stage("write", slow_writer)])
    """
)


def test_build_killed_mid_write_leaves_no_valid_output(tmp_path):
    recipe = write_recipe(tmp_path / "r", "m")
    script = tmp_path / "killed_build.py"
    script.write_text(KILLED_BUILD)
    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(recipe), str(tmp_path), str(marker)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "build exited before it was killed"
            assert time.monotonic() < deadline, "stage never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    cache = tmp_path / "cache"
    assert valid_outputs(cache, "write") == []
    leftovers = list((cache / "tmp").iterdir())
    assert len(leftovers) == 1 and (leftovers[0] / "model.bin").read_bytes() == b"half"
    assert not (tmp_path / "dist" / "tiny-cpu").exists()

    result = build(recipe, cache, tmp_path / "dist", [Stage("write", writer)])
    assert result.ran == ["write"]
    assert (result.dist / "model.bin").read_bytes() == b"complete"
    assert not leftovers[0].exists()  # the dead build's temp folder was swept
