"""`edgepack verify DIST` on small hand-made bundles: exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.manifest import build_manifest, write_manifest

EDGEPACK = str(Path(sys.executable).parent / "edgepack")


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EDGEPACK, "verify", str(path)], capture_output=True, text=True, timeout=60
    )


def make_dist(root: Path) -> Path:
    (root / "triton" / "m" / "1").mkdir(parents=True)
    (root / "triton" / "m" / "1" / "model.onnx").write_bytes(b"\x08\x07onnx")
    (root / "report.html").write_text("<html></html>")
    manifest = build_manifest(
        root, recipe={"name": "r", "sha256": "0"}, target="cpu", stages={"package": "k"}, metrics={}
    )
    write_manifest(root, manifest)
    return root


def test_intact_bundle_passes(tmp_path):
    result = verify(make_dist(tmp_path / "d"))
    assert result.returncode == 0
    assert "OK" in result.stdout and "2 files match manifest.json" in result.stdout


def test_same_size_change_is_caught(tmp_path):
    dist = make_dist(tmp_path / "d")
    (dist / "report.html").write_text("<html></htmX>")  # same size, other bytes
    result = verify(dist)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["changed: report.html"]


def test_missing_manifest_and_bad_path_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = verify(tmp_path / "empty")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "manifest.json: not found" in result.stderr
    result = verify(tmp_path / "nope")
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"error: {tmp_path / 'nope'}: not a folder"
    )


def test_manifest_summary_lists_variants_from_package_metrics(tmp_path):
    metrics = {
        "package": {
            "variants": [
                {
                    "name": "fp32",
                    "metrics": {"accuracy": 0.9},
                    "latency_ms": 10.0,
                    "size_bytes": 100,
                },
                {
                    "name": "int8",
                    "metrics": {"accuracy": 0.89},
                    "latency_ms": 6.0,
                    "size_bytes": 30,
                },
            ]
        }
    }
    manifest = build_manifest(
        tmp_path, recipe={"name": "r", "sha256": "0"}, target="cpu", stages={}, metrics=metrics
    )
    assert manifest["summary"] == {
        "fp32": {"accuracy": 0.9, "latency_ms": 10.0, "size_bytes": 100},
        "int8": {"accuracy": 0.89, "latency_ms": 6.0, "size_bytes": 30},
    }
    assert build_manifest(tmp_path, recipe={}, target="cpu", stages={}, metrics={})["summary"] == {}
