"""Bad input to `edgepack build`: exactly one line `error: <file>: <field>: <msg>`, exit 2.

These run the real CLI entry point (`pipeline.cli.main`) in-process; one case also runs
the installed console script in a subprocess to prove no traceback reaches the user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import cli
from tests.fixtures.recipes import recipe_dict, write_recipe, write_split

REPO = Path(__file__).resolve().parent.parent


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["edgepack", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def build_error(monkeypatch, capsys, recipe: Path, target: str = "cpu") -> str:
    code, out, err = run_cli(
        monkeypatch, capsys, "build", "--recipe", str(recipe), "--target", target, "--quiet"
    )
    assert code == 2, (code, out, err)
    assert out == ""
    return err


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder that passes the model-source check (only config.json is looked at)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return folder


def edited(tmp_path: Path, model_dir: Path, **overrides: object) -> Path:
    return write_recipe(tmp_path, model_dir, **overrides)


def test_missing_recipe_file(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    err = build_error(monkeypatch, capsys, missing)
    assert_one_line_error(err, str(missing), "file not found")


def test_malformed_yaml(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlabels: [a, b\nmodel: m\n")
    err = build_error(monkeypatch, capsys, bad)
    assert_one_line_error(err, str(bad), "malformed YAML", "line ")


def test_top_level_not_a_mapping(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    assert_one_line_error(build_error(monkeypatch, capsys, bad), str(bad), "mapping")


@pytest.mark.parametrize(
    ("section", "value", "field", "message"),
    [
        ("lora", {"r": "sixteen"}, "lora.r", "valid integer"),
        ("lora", {"r": 0}, "lora.r", "greater than 0"),
        ("lora", {"rank": 8}, "lora.rank", "unknown key"),
        ("training", {"epochs": -1}, "training.epochs", "greater than 0"),
        ("training", {"max_length": 4096}, "training.max_length", "less than or equal"),
        ("labels", ["only-one"], "labels", "at least 2"),
        ("positive_label", "secret", "<root>", "positive_label 'secret' is not in labels"),
        ("export", {"opset": 9}, "export.opset", "greater than or equal to 11"),
        ("colour", "blue", "colour", "unknown key"),
    ],
)
def test_schema_errors_name_file_and_field(
    monkeypatch, capsys, tmp_path, model_dir, section, value, field, message
):
    recipe = edited(tmp_path, model_dir, **{section: value})
    line = assert_one_line_error(build_error(monkeypatch, capsys, recipe), message)
    assert line.startswith(f"error: {recipe}: {field}: "), line


def test_unknown_target_lists_known(monkeypatch, capsys, tmp_path, model_dir):
    recipe = edited(tmp_path, model_dir)
    err = build_error(monkeypatch, capsys, recipe, target="tpu-v9")
    assert_one_line_error(err, "tpu-v9", "unknown target", "jetson-orin", "cpu")


def test_bad_target_file_names_its_field(monkeypatch, capsys, tmp_path, model_dir):
    target = yaml.safe_load((REPO / "targets" / "cpu.yaml").read_text())
    target["onnx_max_opset"] = "latest"
    path = tmp_path / "mytarget.yaml"
    path.write_text(yaml.safe_dump(target))
    err = build_error(monkeypatch, capsys, edited(tmp_path, model_dir), target=str(path))
    line = assert_one_line_error(err, "valid integer")
    assert line.startswith(f"error: {path}: onnx_max_opset: "), line


def test_empty_split(monkeypatch, capsys, tmp_path, model_dir):
    recipe = edited(tmp_path, model_dir)
    (tmp_path / "data" / "eval.jsonl").write_text("\n")
    err = build_error(monkeypatch, capsys, recipe)
    assert_one_line_error(err, f"{recipe}: data.eval: split is empty")


def test_missing_split_file(monkeypatch, capsys, tmp_path, model_dir):
    recipe = edited(tmp_path, model_dir, data={"train": "data/train.jsonl",
                                                "eval": "data/eval.jsonl",
                                                "calib": "data/nowhere.jsonl"})  # fmt: skip
    err = build_error(monkeypatch, capsys, recipe)
    assert_one_line_error(err, f"{recipe}: data.calib: file not found", "nowhere.jsonl")


def test_label_outside_recipe_labels(monkeypatch, capsys, tmp_path, model_dir):
    recipe = edited(tmp_path, model_dir)
    train = tmp_path / "data" / "train.jsonl"
    write_split(train, [("fine", "public"), ("leak", "secret"), ("ok", "confidential")])
    err = build_error(monkeypatch, capsys, recipe)
    assert_one_line_error(err, f"{train}:2: label: 'secret' is not one of")


def test_line_that_is_not_json(monkeypatch, capsys, tmp_path, model_dir):
    recipe = edited(tmp_path, model_dir)
    (tmp_path / "data" / "calib.jsonl").write_text('{"text": "a", "label": "public"}\n{oops\n')
    err = build_error(monkeypatch, capsys, recipe)
    assert_one_line_error(err, "calib.jsonl:2: not valid JSON")


@pytest.mark.parametrize(
    "model", ["bert-base-uncased/v1", "sentence-transformers/all-MiniLM-L6-v2"]
)
def test_hub_model_id_fails_fast_without_download(monkeypatch, capsys, tmp_path, model):
    recipe = write_recipe(tmp_path, model)
    line = assert_one_line_error(build_error(monkeypatch, capsys, recipe), "hub id", "never")
    assert line.startswith(f"error: {recipe}: model: "), line


def test_missing_local_model_dir_and_missing_package(monkeypatch, capsys, tmp_path):
    recipe = write_recipe(tmp_path, "models/not-here")
    assert_one_line_error(build_error(monkeypatch, capsys, recipe), "model: ", "does not exist")
    recipe = write_recipe(tmp_path, "package:no-such-edgepack-model")
    assert_one_line_error(build_error(monkeypatch, capsys, recipe), "model: ", "not installed")


def test_console_script_prints_one_line_and_exits_2(tmp_path):
    """The real `edgepack` process, as a user runs it: no traceback, exit code 2."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict("org/some-model")))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "edgepack"), "build", "--recipe", str(recipe)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert_one_line_error(done.stderr, str(recipe), "model: ", "hub id")


def test_schema_command_prints_json_schema(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "schema", "recipe")
    assert code == 0
    schema = json.loads(out)
    assert {"lora", "training", "data", "model"} <= set(schema["properties"])
    code, _, err = run_cli(monkeypatch, capsys, "schema", "pipeline")
    assert code == 2
    assert_one_line_error(err, "unknown kind")
