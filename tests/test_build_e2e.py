"""`edgepack build` of the default recipe for cpu, as a user runs it (real MiniLM, real data).

Builds `--until export` and asserts only what finetune and export promise, so later stages
(and their gates) are checked by their own tests, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from pipeline import operating_point
from pipeline.manifest import verify_dist

REPO = Path(__file__).resolve().parent.parent
EDGEPACK = Path(sys.executable).parent / "edgepack"


@pytest.mark.slow
def test_default_recipe_builds_for_cpu(tmp_path):
    # The shared build cache: the slow deploy test builds the same recipe on top of it.
    env = {k: v for k, v in os.environ.items() if k != "EDGEPACK_CACHE"}
    command = [str(EDGEPACK), "build", "--recipe", "recipes/sensitivity-minilm.yaml",
               "--target", "cpu", "--out", str(tmp_path / "dist"), "--until", "export",
               "--quiet"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    dist = tmp_path / "dist" / "sensitivity-minilm-cpu"
    assert done.stdout.strip().splitlines()[-1].startswith(f"built {dist}")

    assert verify_dist(dist) == []
    manifest = json.loads((dist / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"finetune", "export"}
    assert manifest["target"] == "cpu"
    assert (dist / "adapter" / "adapter_model.safetensors").is_file()
    model = onnx.load(str(dist / "onnx" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]

    metrics = json.loads((dist / "metrics.json").read_text())
    fp32 = metrics["finetune"]["fp32"]
    eval_split = REPO / "recipes" / "data" / "sensitivity" / "eval.jsonl"
    assert fp32["n"] == sum(1 for line in eval_split.open() if line.strip())
    assert fp32["recall"] >= 0.9, fp32
    assert fp32["accuracy"] >= 0.85, fp32
    assert metrics["export"]["max_abs_diff"] <= 1e-4
    finetune = metrics["finetune"]
    assert set(finetune["subsets"]) == {"template", "out_of_template", "hard_negative"}
    assert finetune["subsets"]["template"]["all"]["recall"] >= finetune["min_recall"]
    assert operating_point.read(dist / "onnx") == finetune["threshold"]

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ran: nothing (all cached)" in again.stdout
