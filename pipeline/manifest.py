"""manifest.json: what a bundle holds, hash by hash; the unit that publish and verify trust."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pipeline.fingerprint import package_version, sha256_file
from pipeline.signature import SIGNATURE
from router.errors import UserError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
TRACKED_PACKAGES = (
    "edgepack", "torch", "transformers", "peft", "optimum", "optimum-onnx", "onnx",
    "onnxruntime", "tensorrt",
)  # fmt: skip


def list_files(root: Path) -> list[Path]:
    """Every regular file under root except the manifest and its signature, by POSIX path."""
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in (MANIFEST, SIGNATURE)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def file_entries(root: Path) -> list[dict]:
    return [
        {"path": p.relative_to(root).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in list_files(root)
    ]


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def metrics_summary(metrics: dict) -> dict:
    """Per variant (fp32/int8/qdq): accuracy-type metrics, CPU latency and size, read from
    the package stage's metrics; {} when there is no package stage."""
    variants = metrics.get("package", {}).get("variants", [])
    return {
        v["name"]: {
            **v.get("metrics", {}),
            "latency_ms": v.get("latency_ms"),
            "size_bytes": v.get("size_bytes"),
        }
        for v in variants
    }


def build_manifest(
    root: Path, *, recipe: dict, target: str, stages: dict[str, str], metrics: dict
) -> dict:
    return {
        "summary": metrics_summary(metrics),
        "schema_version": SCHEMA_VERSION,
        "recipe": recipe,
        "target": target,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git_commit(Path(__file__).parent),
        "packages": {p: package_version(p) for p in TRACKED_PACKAGES},
        "stages": stages,
        "metrics": metrics,
        "files": file_entries(root),
    }


def write_manifest(root: Path, manifest: dict) -> Path:
    path = root / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise UserError(f"{path}: not found (is {root} a finished build?)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "files" not in data:
        raise UserError(f"{path}: files: missing")
    return data


def verify_dist(root: Path) -> list[str]:
    """Problems found by re-hashing every file; an empty list means the bundle is intact."""
    manifest = read_manifest(root)
    expected = {f["path"]: f for f in manifest["files"]}
    actual = {p.relative_to(root).as_posix(): p for p in list_files(root)}
    problems = [f"missing: {p}" for p in sorted(expected.keys() - actual.keys())]
    problems += [f"extra: {p}" for p in sorted(actual.keys() - expected.keys())]
    for rel in sorted(expected.keys() & actual.keys()):
        entry, path = expected[rel], actual[rel]
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"changed: {rel}")
    return problems
