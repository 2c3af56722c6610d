"""The `classifier.sensitivity` section at load: every bad entry fails with one line that
names the file and the entry, `edgepack classify` exits 2 without a traceback, and term
files are read relative to the config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.deploy import router_config
from pipeline.recipe import load_recipe
from router.config import load_config
from router.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
UPSTREAMS = {"upstreams": [{"name": "gpu-a", "url": "http://127.0.0.1:9"}]}


def _write(tmp_path: Path, policy: dict, model: dict | None = None) -> Path:
    classifier: dict = {"sensitivity": policy}
    if model is not None:
        classifier["model"] = model
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump({"onprem": UPSTREAMS, "classifier": classifier}))
    return path


BAD = [
    ({"patterns": [{"name": "emp", "regex": "EMP-(\\d{6}"}]}, "emp: regex", "missing )"),
    ({"patterns": [{"name": "emp", "regex": "(?<=x)1"}]}, "patterns.0: emp: regex", "RE2"),
    ({"patterns": [{"name": "emp", "regex": "1", "validator": "crc32"}]}, "emp: unknown validator",
     "luhn"),
    ({"hosts": [{"name": "corp", "cidrs": ["10.0.0.0/33"]}]}, "hosts.0: corp: cidr", "10.0.0.0/33"),
    ({"hosts": [{"name": "corp", "cidrs": ["10.0.0.1/8"]}]}, "corp: cidr", "host bits"),
    ({"hosts": [{"name": "corp", "domains": ["intranet"]}]}, "corp: domain 'intranet'", "labels"),
    ({"hosts": [{"name": "corp"}]}, "hosts.0: corp", "domains, cidrs"),
    ({"topics": [{"name": "reorg", "examples": []}]}, "topics.0: reorg", "needs examples"),
    ({"topics": [{"name": "reorg", "examples": [" "]}]}, "topics.0: reorg", "needs examples"),
    ({"terms": [{"name": "codes", "file": "missing.txt"}]}, "terms.0: codes: file", "missing.txt"),
    ({"terms": [{"name": "codes", "words": []}]}, "terms.0: codes", "no words"),
    ({"terms": [{"name": "codes", "words": ["a" * 201]}]}, "terms.0: codes: word 1:", "200"),
    ({"terms": [{"name": "x", "words": ["a"]}, {"name": "x", "words": ["b"]}]}, "terms", "unique"),
    ({"allow": ["--"]}, "allow: '--'", "no letters"),
    ({"terms": [{"name": "Falcon!", "words": ["a"]}]}, "terms.0.name", "pattern"),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "where", "why"), BAD)
def test_a_bad_entry_fails_at_load_naming_file_and_entry(tmp_path, policy, where, why):
    path = _write(tmp_path, policy)
    with pytest.raises(UserError) as err:
        load_config(path)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: classifier.sensitivity")
    assert where in line and why in line


def test_topics_need_the_model(tmp_path):
    path = _write(tmp_path, {"topics": [{"name": "reorg", "examples": ["layoffs in Q3"]}]})
    with pytest.raises(UserError, match=r"sensitivity\.topics: matched by the model"):
        load_config(path)


def test_the_cli_says_one_line_and_exits_2(tmp_path):
    path = _write(tmp_path, {"patterns": [{"name": "emp", "regex": "EMP-(\\d{6}"}]})
    result = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "classify",
         "--config", str(path), "hello"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: classifier.sensitivity.patterns.0: emp: regex" in result.stderr


def test_term_files_are_read_beside_the_config_and_counted_as_words(tmp_path):
    (tmp_path / "terms").mkdir()
    (tmp_path / "terms" / "products.txt").write_text("# unreleased\nNightjar\n\n  Kestrel X  \n")
    config = load_config(
        _write(tmp_path, {"terms": [{"name": "products", "words": ["Osprey"],
                                     "file": "terms/products.txt"}]})
    )  # fmt: skip
    terms = config.classifier.sensitivity.terms[0]
    assert terms.words == ["Osprey", "Nightjar", "Kestrel X"]
    assert terms.file == tmp_path / "terms" / "products.txt"


def test_the_recipe_carries_its_policy_into_router_yaml_with_term_files_inlined(tmp_path):
    recipe_text = (ROOT / "recipes" / "sensitivity-minilm.yaml").read_text()
    (tmp_path / "data").symlink_to(ROOT / "recipes" / "data")
    (tmp_path / "codenames.txt").write_text("Nightjar\n")
    policy = {
        "terms": [{"name": "codenames", "words": ["Osprey"], "file": "codenames.txt"}],
        "hosts": [{"name": "corp", "domains": ["corp.example.com"]}],
        "allow": ["+1 800 555 0100"],
    }
    indented = yaml.safe_dump({"sensitivity": policy}).replace("\n", "\n  ")
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(recipe_text.replace("deploy:\n", f"deploy:\n  {indented}\n", 1))
    deploy = load_recipe(recipe_path).deploy
    assert deploy is not None
    emitted = router_config.router_config(deploy, positive_label="confidential", max_length=128)
    assert emitted["classifier"]["sensitivity"] == {
        "terms": [{"name": "codenames", "words": ["Osprey", "Nightjar"]}],
        "hosts": [{"name": "corp", "domains": ["corp.example.com"]}],
        "allow": ["+1 800 555 0100"],
    }
    out = tmp_path / "deploy" / "router.yaml"
    out.parent.mkdir()
    out.write_text(router_config.render(emitted, "test"))
    assert load_config(out).classifier.sensitivity == deploy.sensitivity.model_copy(
        update={"terms": [deploy.sensitivity.terms[0].model_copy(update={"file": None})]}
    )
