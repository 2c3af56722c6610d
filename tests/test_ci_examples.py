"""examples/ci/: the GitHub Actions workflow and the GitLab CI pipeline users copy.

Checked with their own tools (actionlint; check-jsonschema's vendored GitHub-workflow and
GitLab-CI schemas, which need no network), and the workflow's own `run:` steps, read from
the YAML, are run against the SeaweedFS S3 server and moto's KMS server: publish on the
default branch → `dev`, on a tag → `stable`, signed with the workflow's KMS key alias.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from pipeline.cache_key import build_key, stage_key
from pipeline.recipe import load_recipe
from pipeline.runner import STAGES, run_build
from pipeline.stage import Stage
from pipeline.target import load_target
from tests.fixtures.bundles import make_bundle
from tests.fixtures.ci_steps import (
    Scenario,
    expand,
    gitlab_variables,
    load_job,
    run_gitlab_job,
    run_job,
    runner_env,
)
from tests.fixtures.recipes import write_recipe
from tests.fixtures.tiny_model import make_tiny_model

if TYPE_CHECKING:
    from tests.fixtures.kms import MotoKMS
    from tests.fixtures.s3 import SeaweedS3

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / "examples" / "ci" / "github.yml"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
README = REPO / "examples" / "ci" / "README.md"
BIN = Path(sys.executable).parent
PUBLISH_IF = (
    "github.event_name == 'push' && (github.ref == format('refs/heads/{0}', "
    "github.event.repository.default_branch) || startsWith(github.ref, 'refs/tags/'))"
)
CHANNEL = "startsWith(github.ref, 'refs/tags/') && 'stable' || 'dev'"
USER_EDITS = {"EDGEPACK_BUCKET", "AWS_ROLE_ARN", "EDGEPACK_SIGNING_KEY"}
REGION = {GITHUB: "AWS_REGION", GITLAB: "AWS_DEFAULT_REGION"}  # the action sets both


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=120)


def test_actionlint_accepts_the_workflow() -> None:
    done = tool("actionlint", "-no-color", str(GITHUB))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "path"), [("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", GITLAB)]
)
def test_files_match_their_vendored_schemas(schema: str, path: Path) -> None:
    done = tool("check-jsonschema", "--builtin-schema", schema, str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    """The schema checks above would see a broken file (not a tool that passes anything)."""
    broken = yaml.safe_load(GITLAB.read_text())
    broken["build"]["cache"] = "not a mapping"
    (tmp_path / "gitlab.yml").write_text(yaml.safe_dump(broken))
    done = tool(
        "check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", str(tmp_path / "gitlab.yml")
    )
    assert done.returncode == 1


def test_only_the_marked_lines_need_editing() -> None:
    """The four `# EDIT` lines are bucket, region, role and key; nothing else names an account."""
    for path in (GITHUB, GITLAB):
        text = path.read_text()
        marked = {line.split(":")[0].strip() for line in text.splitlines() if "# EDIT" in line}
        assert marked == {*USER_EDITS, REGION[path]}
        assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|AWS_SECRET", text)


def test_both_pipelines_build_the_same_matrix() -> None:
    _doc, job = load_job(GITHUB, "build")
    assert job["strategy"]["matrix"]["target"] == ["cpu", "a100", "jetson-orin"]
    gitlab = yaml.safe_load(GITLAB.read_text())
    matrix = gitlab[".targets"]["parallel"]["matrix"]
    assert [e["TARGET"] for e in matrix] == ["cpu", "a100", "jetson-orin"]
    keys = {e["CACHE_KEY"] for e in matrix}  # each its own key from the cache-keys job
    assert keys == {"$CACHE_KEY_" + e["TARGET"].upper().replace("-", "_") for e in matrix}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout as the job sees it: the recipes at the paths the workflow names."""
    ws = tmp_path / "checkout"
    ws.mkdir()
    (ws / "recipes").symlink_to(REPO / "recipes")
    return ws


def workflow_region() -> str:
    return yaml.safe_load(GITHUB.read_text())["env"]["AWS_REGION"]


@pytest.fixture
def signing_alias(kms_server: MotoKMS) -> str:
    """The pipelines' KMS alias in their region, created once in the session's moto server."""
    alias = yaml.safe_load(GITHUB.read_text())["env"]["EDGEPACK_SIGNING_KEY"].removeprefix("kms:")
    assert yaml.safe_load(GITLAB.read_text())["variables"]["EDGEPACK_SIGNING_KEY"] == f"kms:{alias}"
    region = workflow_region()
    assert yaml.safe_load(GITLAB.read_text())["variables"]["AWS_DEFAULT_REGION"] == region
    client = kms_server.client(region)
    if not any(a["AliasName"] == alias for a in client.list_aliases()["Aliases"]):
        key = kms_server.new_key(region=region)
        client.create_alias(AliasName=alias, TargetKeyId=key.key_id)
    return alias


def scenario(s3: SeaweedS3, kms: MotoKMS, bucket_url: str, *, event: str, ref: str) -> Scenario:
    """The runner after configure-aws-credentials: its credentials, and the workflow's region
    as AWS_DEFAULT_REGION (the action exports it so; boto3 reads no AWS_REGION)."""
    endpoints = {"AWS_ENDPOINT_URL_KMS": kms.endpoint, "AWS_ENDPOINT_URL_S3": s3.endpoint}
    region = {"AWS_DEFAULT_REGION": workflow_region()}
    env = runner_env(BIN, **{**s3.env(**endpoints, **region), "PYTHONPATH": str(REPO)})
    publishing = event == "push" and (ref == "refs/heads/main" or ref.startswith("refs/tags/"))
    return Scenario(
        expressions={
            "matrix.target": "cpu",
            PUBLISH_IF: publishing,
            CHANNEL: "stable" if ref.startswith("refs/tags/") else "dev",
        },
        env=env,
        overrides={"EDGEPACK_BUCKET": bucket_url},
    )


def test_workflow_steps_publish_signed_to_dev_then_stable(
    s3_server: SeaweedS3, bucket: str, kms_server: MotoKMS, signing_alias: str, workspace: Path
) -> None:
    url = f"s3://{bucket}/edgepack"
    skip = {"install", "build"}

    pr = scenario(s3_server, kms_server, url, event="pull_request", ref="refs/pull/1/merge")
    steps = run_job_after_fake_build(pr, workspace, skip)
    assert [s.id for s in steps if s.ran] == ["key", "verify"]
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)

    main = scenario(s3_server, kms_server, url, event="push", ref="refs/heads/main")
    steps = run_job_after_fake_build(main, workspace, skip)
    assert [s.id for s in steps if s.ran] == ["key", "verify", "publish"]
    key = main.expressions["steps.key.outputs.key"]
    recipe, cpu = load_recipe(REPO / "recipes" / "sensitivity-minilm.yaml"), load_target("cpu")
    assert key == build_key(STAGES, recipe, cpu)
    publish = steps[-1].stdout
    assert "channel dev" in publish and "signed manifest.json with arn:aws:kms:" in publish
    assert "signature OK" in publish and (workspace / "fetched" / "manifest.json.sig").is_file()

    tag = scenario(s3_server, kms_server, url, event="push", ref="refs/tags/v1.0.0")
    steps = run_job_after_fake_build(tag, workspace, skip)
    assert "already published" in steps[-1].stdout and "channel stable" in steps[-1].stdout
    listed = subprocess.run([str(BIN / "edgepack"), "list", url], env=main.env, text=True,
                            capture_output=True, timeout=60)  # fmt: skip
    row = next(line for line in listed.stdout.splitlines() if "sensitivity-minilm" in line)
    assert "dev, stable" in row and "yes" in row, listed.stdout


def run_job_after_fake_build(sc: Scenario, ws: Path, skip: set[str]):
    """The job with the build step (minutes of fine-tuning; the slow test runs it) replaced
    by its result: the bundle, as the restored cache keeps it
    (the same dist/ in every run, as actions/cache restores it), and its DIST line."""
    shutil.rmtree(ws / "fetched", ignore_errors=True)
    if not (ws / "dist").exists():
        make_bundle(ws / "dist" / "sensitivity-minilm-cpu", recipe="sensitivity-minilm")
    return run_job(GITHUB, "build", sc, ws, skip=skip,
                   github_env={"DIST": "dist/sensitivity-minilm-cpu"})  # fmt: skip


def test_cache_key_is_the_runners_stage_keys_chained(tmp_path: Path) -> None:
    """`edgepack cache-key` is what the runner keys each stage with, chained (and what the
    manifest records); another target's field changes it."""
    recipe = load_recipe(REPO / "recipes" / "sensitivity-minilm.yaml")
    stages = [
        Stage("a", lambda ctx: {}, recipe_fields=("lora",)),
        Stage("b", lambda ctx: {}, needs=("a",), target_fields=("onnx_max_opset",)),
    ]
    cpu = load_target("cpu")
    result = run_build(recipe, cpu, out_root=tmp_path / "dist", cache_root=tmp_path / "cache",
                       stages=stages)  # fmt: skip
    key = build_key(stages, recipe, cpu)
    assert key == stage_key({s.name: s.key for s in result.stages})
    assert stage_key(json.loads((result.dist / "manifest.json").read_text())["stages"]) == key
    assert key != build_key(stages, recipe, load_target("jetson-xavier"))


def second_run_builds_nothing(
    s3: SeaweedS3, bucket: str, kms: MotoKMS, tmp_path: Path, recipes: Path, recipe: str,
    restored: Path | None = None,
) -> None:  # fmt: skip
    """The workflow's real build job, twice: the second run gets the first one's
    .cache/edgepack and dist/ back (what actions/cache restores under the printed key),
    runs no stage, and publishes nothing new. `restored`: a build cache the first run starts
    from (what `restore-keys` gives when the key changed: an older cache of the prefix),
    linked, not copied, so what the runs add to it is there for later tests too."""
    url = f"s3://{bucket}/edgepack"
    runs = []
    for attempt in ("first", "second"):
        ws = tmp_path / attempt
        ws.mkdir()
        (ws / "recipes").symlink_to(recipes)
        if not runs and restored is not None and restored.is_dir():
            (ws / ".cache").mkdir()
            (ws / ".cache" / "edgepack").symlink_to(restored)
        if runs:  # the cache step: restore what the first run saved under the same key
            shutil.copytree(tmp_path / "first" / ".cache", ws / ".cache", symlinks=True)
            shutil.copytree(tmp_path / "first" / "dist", ws / "dist", symlinks=True)
        sc = scenario(s3, kms, url, event="push", ref="refs/heads/main")
        sc.overrides["EDGEPACK_RECIPE"] = f"recipes/{recipe}"
        runs.append((sc, run_job(GITHUB, "build", sc, ws, skip={"install"}, timeout=7200)))
    (first, _), (second, second_steps) = runs
    assert first.expressions["steps.key.outputs.key"] == second.expressions["steps.key.outputs.key"]
    build = next(s for s in second_steps if s.id == "build")
    assert "(ran: nothing (all cached))" in build.stdout, build.stdout
    assert "already published" in second_steps[-1].stdout


def test_second_run_with_the_cache_restored_builds_nothing(
    s3_server: SeaweedS3, bucket: str, kms_server: MotoKMS, signing_alias: str, tmp_path: Path
) -> None:
    """Every stage for real, on a tiny random model (tests/fixtures/tiny_model.py); its
    INT8 accuracy means nothing, so the gate's budget is wide (the gate has its own tests)."""
    recipes = tmp_path / "recipes"
    eval_cfg = {"metric": "accuracy", "int8_budget": 100.0}
    write_recipe(recipes, make_tiny_model(tmp_path / "model"), name="tiny.yaml", eval=eval_cfg)
    second_run_builds_nothing(s3_server, bucket, kms_server, tmp_path, recipes, "tiny.yaml")


@pytest.mark.slow
def test_second_run_of_the_default_recipe_builds_nothing(
    s3_server: SeaweedS3, bucket: str, kms_server: MotoKMS, signing_alias: str, tmp_path: Path
) -> None:
    """The first run starts from the repository's build cache where the end-to-end build
    test left its fine-tuned stages, as `restore-keys` would restore an older cache: the
    suite fine-tunes the default recipe once; the first run builds the stages after export,
    into that cache, where the deploy test finds them. Run alone, it builds everything."""
    second_run_builds_nothing(
        s3_server, bucket, kms_server, tmp_path, REPO / "recipes", "sensitivity-minilm.yaml",
        restored=REPO / ".cache" / "edgepack",
    )  # fmt: skip


def gitlab_ci_env(s3: SeaweedS3, kms: MotoKMS, ws: Path, **ci: str) -> dict[str, str]:
    """The runner's environment: predefined CI_* variables, and S3/KMS credentials standing
    for what the role assumption gives (boto3 prefers them to the web identity token)."""
    endpoints = {"AWS_ENDPOINT_URL_KMS": kms.endpoint, "AWS_ENDPOINT_URL_S3": s3.endpoint}
    predefined = {"CI_PROJECT_DIR": str(ws), "CI_DEFAULT_BRANCH": "main", "CI_JOB_ID": "7",
                  "AWS_ID_TOKEN": "an-oidc-token", **ci}  # fmt: skip
    env = {**s3.env(**endpoints), "PYTHONPATH": str(REPO), **predefined}
    del env["AWS_DEFAULT_REGION"]  # the pipeline names its region itself
    return runner_env(BIN, **env)


def test_gitlab_jobs_key_the_cache_and_publish_to_dev_then_stable(
    s3_server: SeaweedS3, bucket: str, kms_server: MotoKMS, signing_alias: str, workspace: Path
) -> None:
    """The pipeline's own scripts: cache-keys writes each target's key, the build job's
    cache key expands to its target's, and its publish part follows branch and tag."""
    bucket_url = f"s3://{bucket}/edgepack"
    env = gitlab_ci_env(s3_server, kms_server, workspace)
    edited = {"EDGEPACK_BUCKET": bucket_url}
    installs = lambda item: item.startswith("python -m pip install")  # noqa: E731
    keys = run_gitlab_job(GITLAB, "cache-keys", env, workspace, skip=installs)
    assert keys.returncode == 0, keys.stderr
    dotenv = dict(line.split("=", 1) for line in (workspace / "cache-keys.env").read_text().split())
    recipe = load_recipe(REPO / "recipes" / "sensitivity-minilm.yaml")
    matrix = yaml.safe_load(GITLAB.read_text())[".targets"]["parallel"]["matrix"]
    for entry in matrix:
        job_vars = gitlab_variables(GITLAB, "build", {**env, **dotenv}, entry)
        cache_key = yaml.safe_load(GITLAB.read_text())["build"]["cache"][0]["key"]
        target = load_target(entry["TARGET"])
        assert expand(cache_key, job_vars) == f"edgepack-{target.name}-" + build_key(
            STAGES, recipe, target
        )

    make_bundle(workspace / "dist" / "sensitivity-minilm-cpu", recipe="sensitivity-minilm")
    built = lambda item: installs(item) or "edgepack build" in item  # noqa: E731
    cpu = {"TARGET": "cpu", "DIST": "dist/sensitivity-minilm-cpu"}  # DIST: the build item's
    for ci, says in [
        ({"CI_MERGE_REQUEST_IID": "3"}, "nothing published"),
        ({"CI_COMMIT_BRANCH": "main"}, "channel dev"),
        ({"CI_COMMIT_TAG": "v1.0.0"}, "channel stable"),
    ]:
        shutil.rmtree(workspace / "fetched", ignore_errors=True)
        done = run_gitlab_job(GITLAB, "build", {**env, **dotenv, **ci}, workspace, skip=built,
                              matrix={**matrix[0], **cpu}, settings=edited)  # fmt: skip
        assert done.returncode == 0 and says in done.stdout, done.stdout + done.stderr
    assert "signature OK" in done.stdout and "already published" in done.stdout
    token = workspace / ".aws-web-identity-token"
    assert token.read_text() == "an-oidc-token"  # what boto3 exchanges for role credentials


def test_readme_names_the_lines_to_edit() -> None:
    """examples/ci/README.md's table of lines to edit matches the files, line for line."""
    rows = re.findall(r"^\| `(\w+)`.*? \| line (\d+) \| line (\d+) \|", README.read_text(), re.M)
    assert len(rows) == 4
    for name, github_line, gitlab_line in rows:
        assert GITHUB.read_text().splitlines()[int(github_line) - 1].strip().startswith(name)
        gitlab = GITLAB.read_text().splitlines()[int(gitlab_line) - 1].strip()
        assert gitlab.startswith(name if name != "AWS_REGION" else REGION[GITLAB])
