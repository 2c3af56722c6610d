"""The example chat recipe end to end, as a user runs it: the documented command makes its
model folder, `edgepack build` runs every stage through deploy/, and the router, started
from the emitted deploy/router.yaml, sends a confidential prompt to an OpenAI-protocol
server that answers with the built model and a public one to SageMaker (a stand-in
driven by the real boto3 client)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from router.app import build_app
from router.config import RouterConfig
from router.http_protocol import HttpProtocol
from router.schema_io import load_model, read_yaml
from router.testing.sagemaker_server import FakeSageMaker
from router.testing.serve import ServerThread
from tests.fixtures.chat_server import ChatServer
from tests.fixtures.router_env import AWS_ENV

ROOT = Path(__file__).resolve().parent.parent
CONFIDENTIAL = "Refund card 4111 1111 1111 1111 for customer Jane Doe"
PUBLIC = "Write a haiku about autumn leaves"


def run(*args: str, env: dict, timeout: int = 900) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_example_recipe_builds_and_serves_through_the_router(
    tmp_path, tiny_classifier_dir, monkeypatch
):
    examples = shutil.copytree(ROOT / "recipes" / "examples", tmp_path / "examples",
                               ignore=shutil.ignore_patterns("models"))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEPACK_CACHE": str(tmp_path / "cache")}
    run("-m", "pipeline.chat.tiny", str(examples / "models" / "tiny-chat"), "--family", "llama",
        env=env)  # fmt: skip
    out = run("-m", "pipeline.cli", "build", "--recipe", str(examples / "tiny-chat.yaml"),
              "--target", "cpu", "--out", str(tmp_path / "dist"), "--quiet", env=env)  # fmt: skip
    dist = tmp_path / "dist" / "tiny-chat-cpu"
    assert "ran: finetune, export, quantize, package, router" in out
    metrics = json.loads((dist / "metrics.json").read_text())
    assert metrics["export"]["greedy_equal"]["tokens"] == 16 * 16
    assert metrics["quantize"]["variants"]["int4"]["size_ratio"] <= 0.30

    # the classifier build's files, where deploy/README.md says they go
    shutil.copytree(tiny_classifier_dir, dist / "classifier")
    data = read_yaml(dist / "deploy" / "router.yaml")
    assert data["classifier"]["model"]["path"] == "../classifier/model.int8.onnx"
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    chat = ChatServer(dist / "genai", "tiny-chat")
    endpoint = data["sagemaker"]["endpoint_name"]
    servers = [
        ServerThread(chat).start(),
        ServerThread(FakeSageMaker(endpoints=(endpoint,))).start(),
    ]
    data["listen"] = {"host": "127.0.0.1", "port": 0}
    data["onprem"]["upstreams"] = [{"name": "vllm-local", "url": servers[0].url}]
    data["sagemaker"]["endpoint_url"] = servers[1].url
    data["classifier"]["model"]["threshold"] = 0.999  # the tiny classifier alone: public
    data["cache"] = {"enabled": False}
    config = load_model(RouterConfig, dist / "deploy" / "router.yaml", data=data)
    router = ServerThread(build_app(config), http=HttpProtocol).start()
    servers.append(router)
    try:
        with httpx.Client(base_url=router.url, timeout=60) as client:
            body = {"model": "tiny-chat", "max_tokens": 12,
                    "messages": [{"role": "user", "content": CONFIDENTIAL}]}  # fmt: skip
            answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-route"] == "onprem"
            expected = run(str(dist / "genai" / "infer.py"), "--prompt", CONFIDENTIAL, "--json",
                           "--max-new-tokens", "12", env=env)  # fmt: skip
            content = answer.json()["choices"][0]["message"]["content"]
            assert content == json.loads(expected)["text"]
            public = {**body, "messages": [{"role": "user", "content": PUBLIC}]}
            answer = client.post("/v1/chat/completions", json=public)
            assert answer.status_code == 200 and answer.headers["x-route"] == "sagemaker"
            assert chat.requests == 1
    finally:
        for server in servers:
            server.stop()
