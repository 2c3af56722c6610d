"""The `router` stage through the real runner, on a tiny real classifier (seconds).

export/quantize come from tests/fixtures/packaging.py (a random 2-layer BERT with MiniLM's
tokenizer, exported by torch and quantized by ONNX Runtime). The emitted router.yaml is
loaded by the router's own loader and served by `edgepack router`, which must answer
/readyz with the bundle's classifier loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline.errors import StageFailed
from pipeline.manifest import verify_dist
from pipeline.pooling import add_pooled_output
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stages.router import STAGE as ROUTER
from pipeline.target import load_target
from router.config import load_config
from tests.fixtures.packaging import upstream_stages
from tests.fixtures.ports import free_port
from tests.fixtures.recipes import TEXTS, write_bare_recipe

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEPLOY = yaml.safe_load((ROOT / "recipes" / "sensitivity-minilm.yaml").read_text())[
    "deploy"
]
DEPLOY_FILES = {
    "router.yaml", "Dockerfile", "Dockerfile.dockerignore", "requirements.txt", "README.md",
    "k8s/00-namespace.yaml", "k8s/10-serviceaccount.yaml", "k8s/20-configmap.yaml",
    "k8s/30-deployment.yaml", "k8s/50-scaledobject.yaml",
    "k8s/60-pdb.yaml", "prometheus/alerts.yaml", "prometheus/forecast.yaml",
    "prometheus/scrape.yaml", "grafana/dashboard.json",
}  # fmt: skip


class OpenAIUpstream(BaseHTTPRequestHandler):
    """An on-prem stand-in speaking the OpenAI protocol (health + chat completions)."""

    def do_GET(self) -> None:
        self._json(200, {"status": "ok"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json(200, {"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"},
             "finish_reason": "stop"}]})  # fmt: skip

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def local_deploy(upstream: str, port: int, **changes) -> dict:
    deploy = json.loads(json.dumps(DEFAULT_DEPLOY))
    deploy["listen_port"] = port
    deploy["onprem"] = {"upstreams": [{"name": "local", "url": upstream}]}
    deploy["fallback"] = {}
    deploy["threshold"] = 0.99  # the tiny model is random: only detectors make confidential
    deploy.pop("cache")
    deploy.update(changes)
    return deploy


def build(folder: Path, deploy: dict | None, onnx_dir: Path):
    path = write_bare_recipe(folder, folder / "unused-model")
    if deploy is not None:
        raw = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**raw, "deploy": deploy}, sort_keys=False))
    recipe = load_recipe(path)
    stages = [*upstream_stages(onnx_dir), ROUTER]
    return run_build(
        recipe, load_target("cpu"), out_root=folder / "dist", cache_root=folder / "cache",
        stages=stages,
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory, upstream, tiny_onnx_models):
    folder = tmp_path_factory.mktemp("deploy-build")
    port = free_port()
    return build(folder, local_deploy(upstream, port), tiny_onnx_models), port, folder


def test_stage_writes_every_deploy_file_into_dist(built):
    result, _, _ = built
    deploy = result.dist / "deploy"
    found = {p.relative_to(deploy).as_posix() for p in deploy.rglob("*") if p.is_file()}
    assert found == DEPLOY_FILES
    verify_dist(result.dist)  # manifest covers deploy/ like every other file
    manifest = json.loads((result.dist / "manifest.json").read_text())
    assert "deploy/router.yaml" in {f["path"] for f in manifest["files"]}
    metrics = json.loads((result.dist / "metrics.json").read_text())["router"]
    assert metrics["classifier_files"][0] == "onnx/model.int8.onnx"


def test_router_yaml_points_at_the_bundles_classifier(built):
    result, port, _ = built
    config = load_config(result.dist / "deploy" / "router.yaml")
    model = config.classifier.model
    assert model.path.resolve() == (result.dist / "onnx" / "model.int8.onnx").resolve()
    assert model.path.is_file() and (result.dist / "onnx" / "tokenizer.json").is_file()
    assert config.listen.port == port and config.sagemaker.endpoint_name == "llm-public-prod"
    cm = yaml.safe_load((result.dist / "deploy" / "k8s" / "20-configmap.yaml").read_text())
    assert cm["data"]["router.yaml"] == (result.dist / "deploy" / "router.yaml").read_text()
    docker = (result.dist / "deploy" / "Dockerfile").read_text()
    for rel in metrics_files(result):
        assert (result.dist / rel).is_file() and rel in docker  # the image copies what exists


def metrics_files(result) -> list[str]:
    return json.loads((result.dist / "metrics.json").read_text())["router"]["classifier_files"]


def test_second_build_reuses_the_stage_and_deploy_change_reruns_only_it(
    built, upstream, tiny_onnx_models
):
    _, port, folder = built
    again = build(folder, local_deploy(upstream, port), tiny_onnx_models)
    assert again.ran == []
    changed = build(folder, local_deploy(upstream, port, replicas=3), tiny_onnx_models)
    assert changed.ran == ["router"]
    deployment = yaml.safe_load((changed.dist / "deploy/k8s/30-deployment.yaml").read_text())
    assert deployment["spec"]["replicas"] == 3


def test_router_settings_that_drift_from_the_router_schema_fail_the_build(
    tmp_path, upstream, tiny_onnx_models
):
    deploy = local_deploy(upstream, free_port(), router={"listen": {"hots": "0.0.0.0"}})
    with pytest.raises(StageFailed, match=r"router.yaml is invalid: .*listen\.hots: unknown key"):
        build(tmp_path, deploy, tiny_onnx_models)


def test_recipe_without_deploy_section_builds_without_deploy_folder(tmp_path, tiny_onnx_models):
    result = build(tmp_path, None, tiny_onnx_models)
    assert not (result.dist / "deploy").exists()
    assert any("no deploy: section" in note for note in result.notes)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "router exited early"
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s")


@contextmanager
def serve(dist: Path, *extra: str) -> Iterator[subprocess.Popen]:
    """`edgepack router --config dist/deploy/router.yaml`, as a user runs it; terminated
    (killed after 40 s) on exit."""
    exe = shutil.which("edgepack", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-c", "from pipeline.cli import main; main()"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen(
        [*cmd, "router", "--config", str(dist / "deploy" / "router.yaml"), *extra],
        cwd=dist, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_edgepack_router_serves_readyz_with_the_bundle_classifier(built):
    result, port, _ = built
    with serve(result.dist) as proc:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", proc).json()
        assert ready["classifier"] is True and ready["routes"]["onprem"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert "edgepack_router_requests_total" in metrics or "edgepack_router_in_flight" in metrics
        prompt = {"role": "user", "content": "card 4111 1111 1111 1111"}
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "m", "messages": [prompt]},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.headers["x-route"] == "onprem"
        assert answer.headers["x-sensitivity"] == "confidential"


OPTIONAL_IMPORTS = {"websockets", "watchfiles", "brotli", "setuptools", "sniffio"}
"""Imported only because this venv has them: uvicorn's ws/reload, brotli and anyio's sniffio
(present for the openai SDK of the dev extra) are import-if-present; setuptools'
`_distutils_hack` loads from a .pth at interpreter start."""

IMPORT_PROBE = """
import json, os, sys, threading, time, urllib.request
from importlib import metadata
from router.config import load_config
from router.server import serve

config_path, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def probe():
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    req = urllib.request.Request(base + "/v1/chat/completions", body.encode(),
                                 {"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    urllib.request.urlopen(base + "/metrics", timeout=2).read()
    tops = {m.split(".")[0] for m in list(sys.modules)}
    owners = metadata.packages_distributions()
    dists = sorted({d for t in tops - set(sys.stdlib_module_names) for d in owners.get(t, [])})
    with open(out, "w") as fh:
        json.dump(dists, fh)
    os._exit(0)

threading.Thread(target=probe, daemon=True).start()
serve(load_config(config_path))
"""


def test_image_requirements_cover_what_the_running_router_imports(built, tmp_path):
    """Serve a request, then list the distributions loaded: the image must install them all."""
    from pipeline.deploy.dockerfile import _canonical, runtime_closure

    result, port, _ = built
    out = tmp_path / "dists.json"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    config = result.dist / "deploy" / "router.yaml"
    subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(config), str(port), str(out)],
        cwd=result.dist, env=env, timeout=120, check=True, capture_output=True,
    )  # fmt: skip
    loaded = {_canonical(d) for d in json.loads(out.read_text())} - {"edgepack"}
    assert {"onnxruntime", "starlette", "uvicorn"} <= loaded, "the probe saw the router run"
    missing = loaded - set(runtime_closure()) - OPTIONAL_IMPORTS
    assert not missing, f"router imports these, deploy/requirements.txt lacks them: {missing}"
    assert not loaded & {"torch", "transformers", "peft", "optimum"}


@pytest.mark.slow
def test_real_default_recipe_bundle_serves_readyz(tmp_path):
    """The default recipe, built for real (shared build cache), served from its own deploy/."""
    from pipeline.runner import default_cache_root

    recipe = load_recipe(ROOT / "recipes" / "sensitivity-minilm.yaml")
    result = run_build(
        recipe, load_target("cpu"), out_root=tmp_path / "dist", cache_root=default_cache_root()
    )
    port = free_port()  # the recipe's port may be taken here
    with serve(result.dist, "--host", "127.0.0.1", "--port", str(port)) as proc:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", proc, timeout=120).json()
        # the recipe's on-prem hosts do not exist here; SageMaker (boto3 client) is the route
        assert ready["classifier"] is True and ready["routes"]["sagemaker"] is True
    demo = run_demo(result.dist)  # `make router` with the real classifier
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "200 X-Route: sagemaker X-Sensitivity: public" in demo.stdout


def test_image_layout_from_the_dockerfile_loads_the_config_and_model(built, tmp_path):
    """No Docker engine here: replay the Dockerfile's COPYs from the bundle into a fake root,
    then load the config the image's CMD (and the pod's ConfigMap mount) names."""
    from router.config import load_config

    result, _, _ = built
    deploy_dir = result.dist / "deploy"
    lines = (deploy_dir / "Dockerfile").read_text().splitlines()
    ignore = (deploy_dir / "Dockerfile.dockerignore").read_text().splitlines()
    root = tmp_path / "image"
    workdir = "/"
    for line in lines:
        parts = line.split()
        if parts[:1] == ["WORKDIR"]:
            workdir = parts[1]
        if parts[:1] != ["COPY"] or any(p.startswith("--from") for p in parts):
            continue
        *sources, dest = parts[1:]
        for src in sources:
            assert f"!{src}" in ignore, f"{src} is left out of the build context"
            if not dest.startswith("/"):
                dest = f"{workdir}/{dest}"
            target = root / dest.lstrip("/")
            target = target / Path(src).name if dest.endswith("/") else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.dist / src, target)
    cmd = json.loads(next(x for x in lines if x.startswith("CMD "))[4:])
    assert cmd[0] == "--config"
    deployment = yaml.safe_load((deploy_dir / "k8s" / "30-deployment.yaml").read_text())
    sidecar = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert sidecar["args"] == cmd, "pod and image name the same config path"
    config = load_config(root / cmd[1].lstrip("/"))
    assert config.classifier.model.path.is_file()
    assert (config.classifier.model.path.parent / "tokenizer.json").is_file()
    assert (config.classifier.model.path.parent / "config.json").is_file()


def run_demo(dist: Path) -> subprocess.CompletedProcess:
    """`make router`'s command on a bundle: demo stand-ins + the emitted config, --check."""
    config = dist / "deploy" / "router.yaml"
    return subprocess.run(
        [sys.executable, "-m", "router.demo", "--config", str(config), "--port", "0", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_make_router_demo_runs_the_emitted_config(built):
    result, _, _ = built
    proc = run_demo(result.dist)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"config   {result.dist / 'deploy' / 'router.yaml'}" in proc.stdout
    assert "model.int8.onnx" in proc.stdout, "the bundle's classifier, not rules only"
    assert proc.stdout.count("curl -si http://127.0.0.1:") == 2
    assert "200 X-Route: onprem X-Sensitivity: confidential" in proc.stdout
    assert "200 X-Route: sagemaker X-Sensitivity: public" in proc.stdout


def _pooled(onnx_dir: Path, folder: Path) -> Path:
    out = folder / "onnx-pooled"
    shutil.copytree(onnx_dir, out)
    add_pooled_output(out / "model.int8.onnx")
    return out


def test_topic_thresholds_are_chosen_above_every_public_eval_row(tmp_path, upstream,
                                                                 tiny_onnx_models):  # fmt: skip
    topic = {"name": "reorg", "description": "", "examples": [TEXTS[1]]}  # a confidential row
    deploy = local_deploy(upstream, free_port(), sensitivity={"topics": [topic]})
    result = build(tmp_path, deploy, _pooled(tiny_onnx_models, tmp_path))
    row = json.loads((result.dist / "metrics.json").read_text())["router"]["topics"]["reorg"]
    assert row["public_max"] < row["threshold"] <= row["public_max"] + 0.021
    assert (row["confidential_reached"], row["confidential_rows"]) == (4, 4)
    config = load_config(result.dist / "deploy" / "router.yaml")
    assert config.classifier.sensitivity.topics[0].threshold == row["threshold"]


def test_topics_on_a_model_without_the_pooled_output_fail_the_stage(tmp_path, upstream,
                                                                   tiny_onnx_models):  # fmt: skip
    topic = {"name": "reorg", "examples": [TEXTS[1]]}
    deploy = local_deploy(upstream, free_port(), sensitivity={"topics": [topic]})
    with pytest.raises(StageFailed, match=r"deploy\.sensitivity\.topics: .*embedding"):
        build(tmp_path, deploy, tiny_onnx_models)
