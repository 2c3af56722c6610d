"""package and router for chat recipes, per target: the GenAI folder's infer.py decodes
what the build validated; vllm/ and its Kubernetes manifests; sagemaker/deploy.json that
botocore accepts; deploy/router.yaml pointing at exactly the Service and endpoint built."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import kubernetes_validate
import pytest
import yaml

from pipeline.chat import serving
from pipeline.chat.decode import OnnxDecoder, stop_ids
from pipeline.chat.recipe import load_build_recipe
from pipeline.runner import run_build
from pipeline.target import load_target
from router.config import load_config
from tests.fixtures.tiny_chat import write_chat_recipe

DEPLOY = {
    "image": "registry.example.com/edgepack/router:0.1.0",
    "onprem": {"upstreams": [{"name": "gpu-a", "url": "http://vllm-a.gpu.internal:8000"}]},
    "sagemaker": {"endpoint": "chat-public", "region": "eu-west-1"},
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory, tiny_chat_models):
    root = tmp_path_factory.mktemp("chat-package")
    recipe = load_build_recipe(write_chat_recipe(root, tiny_chat_models["qwen2"], deploy=DEPLOY))
    dists = {}
    for name in ("cpu", "a100", "jetson"):
        build = run_build(
            recipe, load_target(name), out_root=root / "dist", cache_root=root / "cache"
        )
        dists[name] = build.dist
    return dists


def test_infer_py_decodes_what_the_build_validated(builds):
    dists = builds
    folder = dists["cpu"] / "genai"
    config = json.loads((folder / "genai_config.json").read_text())
    assert config["model"]["decoder"]["inputs"]["past_key_names"] == "past_key_values.%d.key"
    prompt = "Where do public prompts go?"
    done = subprocess.run(
        [sys.executable, str(folder / "infer.py"), "--prompt", prompt, "--json",
         "--max-new-tokens", "12"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    reply = json.loads(done.stdout)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                        add_generation_prompt=True)  # fmt: skip
    expected = OnnxDecoder(dists["cpu"] / "onnx" / "model.int4.onnx").greedy(
        ids, 12, stop_ids(folder.parent / "onnx")
    )
    assert reply["tokens"] == expected
    assert (folder / "model.onnx").read_bytes() == (
        dists["cpu"] / "onnx" / "model.int4.onnx"
    ).read_bytes()


def test_vllm_manifests_and_the_router_upstream_agree(builds):
    dists = builds
    vllm = dists["a100"] / "vllm"
    deployment = yaml.safe_load((vllm / "k8s" / "10-deployment.yaml").read_text())
    service = yaml.safe_load((vllm / "k8s" / "20-service.yaml").read_text())
    for resource in (deployment, service):
        kubernetes_validate.validate(resource, "1.29.0", strict=True)
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == json.loads((vllm / "args.json").read_text())
    assert command[:3] == ["vllm", "serve", "/models/tiny-chat"]
    assert (vllm / "model" / "model.safetensors").is_file()
    meta, port = service["metadata"], service["spec"]["ports"][0]["port"]
    config = load_config(dists["a100"] / "deploy" / "router.yaml")
    urls = [str(u.url).rstrip("/") for u in config.onprem.upstreams]
    assert urls == [f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{port}"]
    assert config.classifier.model.path.name == "model.int8.onnx"
    assert config.classifier.model.path.parent.name == "classifier"  # never the LLM
    cpu_config = load_config(dists["cpu"] / "deploy" / "router.yaml")
    assert [u.name for u in cpu_config.onprem.upstreams] == ["gpu-a"]  # no vllm/ for cpu


def test_sagemaker_deploy_json_is_valid_and_matches_the_router(builds):
    dists = builds
    deploy = json.loads((dists["a100"] / "sagemaker" / "deploy.json").read_text())
    requests = {k: deploy[k] for k in serving.OPERATIONS}
    assert serving.botocore_errors(requests) == []
    config = load_config(dists["a100"] / "deploy" / "router.yaml")
    assert deploy["create_endpoint"]["EndpointName"] == config.sagemaker.endpoint_name
    env = deploy["create_model"]["PrimaryContainer"]["Environment"]
    args = json.loads((dists["a100"] / "vllm" / "args.json").read_text())
    for name, value in env.items():
        flag = "--" + name.removeprefix("SM_VLLM_").lower().replace("_", "-")
        assert args[args.index(flag) + 1] == value
    broken = json.loads(json.dumps(requests))
    broken["create_endpoint_config"]["ProductionVariants"][0]["InitialInstanceCount"] = "one"
    assert serving.botocore_errors(broken)[0].startswith("CreateEndpointConfig:")


def test_jetson_bundle_and_reports(builds):
    dists = builds
    with tarfile.open(dists["jetson"] / "jetson.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"jetson/model.onnx", "jetson/genai_config.json", "jetson/infer.py",
            "jetson/README.md", "jetson/tokenizer.json"} <= names  # fmt: skip
    assert "Edge-LLM" in (dists["jetson"] / "jetson" / "README.md").read_text()
    assert not (dists["jetson"] / "vllm").exists() and not (dists["jetson"] / "sagemaker").exists()
    card = (dists["cpu"] / "MODEL_CARD.md").read_text()
    for variant in ("FP32", "INT8", "INT4"):
        assert f"| {variant} |" in card
    page = (dists["cpu"] / "report.html").read_text()
    assert page.count("<svg") == 5 and "<script" not in page
    metrics = json.loads((dists["cpu"] / "metrics.json").read_text())["package"]
    assert set(metrics["decode_tokens_per_s"]) == {"fp32", "int8", "int4"}
