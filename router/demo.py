"""`make router`: the sidecar on 127.0.0.1 with local stand-ins for its upstreams.

Starts an OpenAI-protocol server (the on-prem GPU pool), a SageMaker runtime server (the
cloud; the real boto3 client talks to it) and the router, then prints two curl commands:
a confidential prompt (→ X-Route: onprem) and a public one (→ X-Route: sagemaker).
The classifier is the default recipe's build (dist/sensitivity-minilm-cpu/onnx/) when it
exists, else the rules alone. `--config` runs a build's emitted deploy/router.yaml instead
(its classifier, tiers, limits), with only the upstreams swapped for the local stand-ins.
`--check` sends both requests itself and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx

from router.app import build_app
from router.config import RouterConfig
from router.errors import UserError
from router.http_protocol import HttpProtocol
from router.schema_io import load_model, read_yaml
from router.testing.openai_server import FakeOpenAI
from router.testing.sagemaker_server import FakeSageMaker
from router.testing.serve import ServerThread

DIST_MODEL = Path("dist/sensitivity-minilm-cpu/onnx/model.int8.onnx")
CONFIDENTIAL = "Refund card 4111 1111 1111 1111 for customer Jane Doe"
PUBLIC = "Write a haiku about autumn leaves"


def _config(onprem_url: str, sagemaker_url: str, port: int) -> dict:
    data: dict = {
        "listen": {"host": "127.0.0.1", "port": port},
        "onprem": {"upstreams": [{"name": "gpu-local", "url": onprem_url}]},
        "sagemaker": {"endpoint_name": "demo-endpoint", "region": "us-east-1",
                      "endpoint_url": sagemaker_url, "max_concurrency": 16},
        "logging": {"level": "warning"},
    }  # fmt: skip
    if DIST_MODEL.is_file():
        data["classifier"] = {"model": {"path": str(DIST_MODEL.resolve())}}
    return data


def _emitted(path: Path, onprem_url: str, sagemaker_url: str) -> dict:
    """A build's deploy/router.yaml with its upstreams pointed at the local stand-ins."""
    data = read_yaml(path)
    data["listen"] = {"host": "127.0.0.1", "port": 0}
    data["onprem"] = {**data["onprem"], "upstreams": [{"name": "gpu-local", "url": onprem_url}]}
    data["sagemaker"] = {**data.get("sagemaker", {}), "endpoint_url": sagemaker_url}
    data.pop("fallback", None)  # no stand-in for the smaller models
    data["cache"] = {**data.get("cache", {}), "enabled": False}  # no Redis in the demo
    return data


def _endpoint(path: Path | None) -> str:
    if path is None:
        return "demo-endpoint"
    return read_yaml(path).get("sagemaker", {}).get("endpoint_name", "demo-endpoint")


def _curl(url: str, text: str) -> str:
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": text}]})
    return f"curl -si {url}/v1/chat/completions -H 'content-type: application/json' -d '{body}'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="router port (0: any free one)")
    parser.add_argument("--check", action="store_true", help="send both requests and exit")
    parser.add_argument("--config", type=Path, help="a build's deploy/router.yaml to run")
    args = parser.parse_args(argv)
    for key, value in {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}.items():
        os.environ.setdefault(key, value)  # the SageMaker stand-in ignores signatures
    onprem = ServerThread(FakeOpenAI(name="onprem-gpu", record=False)).start()
    endpoint = _endpoint(args.config)
    sagemaker = ServerThread(FakeSageMaker(endpoints=(endpoint,), record=False)).start()
    if args.config is not None:
        data, where = _emitted(args.config, onprem.url, sagemaker.url), args.config
    else:
        data, where = _config(onprem.url, sagemaker.url, 0), Path("<demo>")
    config = load_model(RouterConfig, where, data=data)
    router = ServerThread(build_app(config), port=args.port, http=HttpProtocol)
    router.start()
    model = config.classifier.model
    classifier = f"ONNX model {model.path}" if model is not None else "rules only (no build)"
    if args.config is not None:
        print(f"config   {args.config}  (upstreams swapped for the local stand-ins)")
    print(f"router   {router.url}   classifier: {classifier}")
    print(
        f"on-prem  {onprem.url}   (OpenAI protocol)\nsagemaker {sagemaker.url}   (InvokeEndpoint)"
    )
    print("\nconfidential → X-Route: onprem\n  " + _curl(router.url, CONFIDENTIAL))
    print("public → X-Route: sagemaker\n  " + _curl(router.url, PUBLIC), flush=True)
    try:
        if args.check:
            return _check(router.url)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        for server in (router, onprem, sagemaker):
            server.stop()


def _check(url: str) -> int:
    ok = True
    for text, route in ((CONFIDENTIAL, "onprem"), (PUBLIC, "sagemaker")):
        body = {"model": "demo", "messages": [{"role": "user", "content": text}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        got = r.headers.get("x-route")
        print(f"{r.status_code} X-Route: {got} X-Sensitivity: {r.headers.get('x-sensitivity')}")
        ok &= r.status_code == 200 and got == route
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:  # e.g. --config names a missing or invalid file
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
