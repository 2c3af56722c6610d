"""The Jetson bundle's own scripts refuse an unsigned or tampered bundle when a key is set.

A fetched bundle is laid out as on the device: manifest.json and manifest.json.sig at the
top, the build kit in jetson/ (write_build_kit, infer.py and edgepack_signature.py, as
pipeline/packaging/jetson.py writes them). build_engine.sh runs against a fake trtexec;
infer.py is asked to classify, which it must refuse before loading anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import signature
from pipeline.manifest import build_manifest, write_manifest
from pipeline.packaging.device_build import TEMPLATES, write_build_kit
from pipeline.publish.signing import Signer, generate_key
from pipeline.signature import SIGNATURE
from tests.test_engine_scripts import fake_device, make_spec

VENV_BIN = Path(sys.executable).parent  # python3 with cryptography, as JetPack's has it


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "fetched"
    jetson = root / "jetson"
    write_build_kit(jetson, make_spec(), onnx_rel="model.qdq.onnx", extra={"target": "jetson-orin"})
    (jetson / "model.qdq.onnx").write_bytes(b"\x08\x07 not really onnx")
    shutil.copyfile(TEMPLATES / "infer.py", jetson / "infer.py")
    shutil.copyfile(Path(signature.__file__), jetson / "edgepack_signature.py")
    write_manifest(root, build_manifest(root, recipe={"name": "r", "sha256": "0" * 64},
                                        target="jetson-orin", stages={}, metrics={}))  # fmt: skip
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    (root / SIGNATURE).write_bytes(
        Signer(str(tmp_path / "k.pem")).sign((root / "manifest.json").read_bytes())
    )
    return root


def run(cmd: list[str], tmp: Path, key: Path | None) -> subprocess.CompletedProcess:
    bin_dir = fake_device(tmp / "bin", "10.3", "8.7")
    env = {"PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin", "FAKE_LOG": str(tmp / "argv.log"),
           "HOME": str(tmp)}  # fmt: skip
    if key is not None:
        env["EDGEPACK_PUBLIC_KEY"] = str(key)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def build(bundle: Path, tmp: Path, key: Path | None) -> subprocess.CompletedProcess:
    return run(["bash", str(bundle / "jetson" / "build_engine.sh")], tmp, key)


def infer(bundle: Path, tmp: Path, key: Path | None) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "python3"), str(bundle / "jetson" / "infer.py"), "hello"], tmp, key)


def refused(result: subprocess.CompletedProcess, why: str) -> None:
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and why in result.stderr, result.stderr


def test_signed_bundle_builds_and_the_engine_it_made_is_allowed(bundle: Path, tmp_path: Path):
    key = tmp_path / "k.pub.pem"
    first = build(bundle, tmp_path, key)
    assert first.returncode == 0 and (bundle / "jetson" / "model.plan").is_file(), first.stderr
    again = build(bundle, tmp_path, key)  # model.plan and timing.cache are the device's own
    assert again.returncode == 0 and "signature OK" in again.stderr, again.stderr


def test_scripts_refuse_each_tampering(bundle: Path, tmp_path: Path) -> None:
    key = tmp_path / "k.pub.pem"
    onnx = bundle / "jetson" / "model.qdq.onnx"
    onnx.write_bytes(onnx.read_bytes().replace(b"really", b"REALLY"))
    refused(build(bundle, tmp_path, key), "model.qdq.onnx: changed since it was signed")
    refused(infer(bundle, tmp_path, key), "model.qdq.onnx: changed since it was signed")
    assert not (tmp_path / "argv.log").exists(), "nothing may be built from a tampered bundle"
    write_manifest(bundle, build_manifest(bundle, recipe={"name": "r", "sha256": "0" * 64},
                                          target="jetson-orin", stages={}, metrics={}))  # fmt: skip
    refused(build(bundle, tmp_path, key), "made for another manifest.json")
    generate_key(tmp_path / "evil.pem", tmp_path / "evil.pub.pem")
    (bundle / SIGNATURE).write_bytes(
        Signer(str(tmp_path / "evil.pem")).sign((bundle / "manifest.json").read_bytes())
    )
    refused(infer(bundle, tmp_path, key), "does not verify")
    (bundle / SIGNATURE).unlink()
    refused(build(bundle, tmp_path, key), "not signed")
    assert build(bundle, tmp_path, key=None).returncode == 0  # no key configured: no check
