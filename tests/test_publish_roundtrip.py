"""publish → list → fetch against a real SeaweedFS S3 server (tests/fixtures/s3.py)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rich.console import Console

from pipeline.manifest import verify_dist
from pipeline.publish.client import make_client
from pipeline.publish.download import fetch_bundle
from pipeline.publish.listing import list_versions
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import parse_s3_url
from pipeline.publish.upload import publish_bundle, read_bundle
from router.errors import UserError
from tests.fixtures.bundles import make_bundle

if TYPE_CHECKING:
    from tests.fixtures.s3 import SeaweedS3

EDGEPACK = [sys.executable, "-c", "from pipeline.cli import main; main()"]
WRITES = {"PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload"}
QUIET = TransferProgress(Console(stderr=True), quiet=True)


def edgepack(server: SeaweedS3, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EDGEPACK, *map(str, args)], env=server.env(), capture_output=True, text=True, timeout=120
    )


def counting_client() -> tuple[object, Counter]:
    """A client from the standard chain whose every S3 call is counted by operation name."""
    client, calls = make_client(), Counter()
    client.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return client, calls


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(
        filecmp.cmp(a / rel, b / rel, shallow=False) for rel in files_a
    )


def test_cli_round_trip_is_byte_identical(s3_server: SeaweedS3, bucket: str, tmp_path: Path):
    dist = make_bundle(tmp_path / "dist" / "demo-recipe-cpu", sizes={
        "onnx/model.onnx": 20_000_000, "onnx/tokenizer.json": 7_000, "MODEL_CARD.md": 0,
    })  # fmt: skip
    pub = edgepack(s3_server, "publish", dist, "--to", f"s3://{bucket}/ci", "--channel", "stable")
    assert pub.returncode == 0, pub.stderr
    assert "3 files uploaded" in pub.stdout and "channel stable" in pub.stdout
    dest = tmp_path / "out" / "bundle"
    got = edgepack(s3_server, "fetch", f"s3://{bucket}/ci/demo-recipe", "--target", "cpu",
                   "--channel", "stable", dest, "--quiet")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert same_tree(dist, dest)
    assert verify_dist(dest) == []
    listed = edgepack(s3_server, "list", f"s3://{bucket}/ci")
    assert listed.returncode == 0 and "demo-recipe" in listed.stdout and "stable" in listed.stdout


def test_republish_uploads_nothing(aws_env, bucket: str, tmp_path: Path) -> None:
    dist = make_bundle(tmp_path / "b", sizes={"big.bin": 18_000_000, "small.txt": 10})
    url = parse_s3_url(f"s3://{bucket}/p")
    client, calls = counting_client()
    first = publish_bundle(client, dist, url, progress=QUIET)
    assert sorted(first.uploaded) == ["big.bin", "small.txt"]
    assert calls["CreateMultipartUpload"] == 1 and calls["PutObject"] == 2  # small + manifest
    before = {
        o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
    }
    calls.clear()
    again = publish_bundle(client, dist, url, progress=QUIET)
    assert again.already_published and again.uploaded == []
    assert not WRITES & set(calls), calls
    after = {o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before


def test_rerun_after_crash_uploads_only_what_is_missing(aws_env, bucket: str, tmp_path: Path):
    dist = make_bundle(tmp_path / "b", sizes={"a.bin": 1000, "b.bin": 2000, "c/d.bin": 3000})
    url = parse_s3_url(f"s3://{bucket}/p")
    client, calls = counting_client()
    first = publish_bundle(client, dist, url, progress=QUIET)
    root = f"p/demo-recipe/cpu/{first.version}"
    # what a publish killed after two files and before its commit leaves behind:
    client.delete_object(Bucket=bucket, Key=f"{root}/manifest.json")
    client.delete_object(Bucket=bucket, Key=f"{root}/c/d.bin")
    assert list_versions(client, url) == []
    calls.clear()
    second = publish_bundle(client, dist, url, progress=QUIET)
    assert second.uploaded == ["c/d.bin"] and sorted(second.skipped) == ["a.bin", "b.bin"]
    assert calls["PutObject"] == 2  # the missing file and the manifest
    assert [v.version for v in list_versions(client, url)] == [first.version]
    assert second.aborted_stale == 0


def test_stale_multipart_uploads_of_killed_publishes_are_aborted(aws_env, bucket, tmp_path):
    dist = make_bundle(tmp_path / "b", sizes={"a.bin": 1000})
    url = parse_s3_url(f"s3://{bucket}/p")
    client = make_client()
    version = read_bundle(dist).version
    stale = client.create_multipart_upload(Bucket=bucket, Key=f"p/demo-recipe/cpu/{version}/x")
    elsewhere = client.create_multipart_upload(Bucket=bucket, Key="p/other/key")
    result = publish_bundle(client, dist, url, progress=QUIET, stale_after=timedelta(0))
    assert result.aborted_stale == 1
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [elsewhere["UploadId"]]
    assert stale["UploadId"] not in {u["UploadId"] for u in left}


def test_channel_moves_and_old_version_stays(aws_env, bucket: str, tmp_path: Path) -> None:
    url = parse_s3_url(f"s3://{bucket}/models")
    client = make_client()
    old = make_bundle(tmp_path / "v1", seed=1)
    new = make_bundle(tmp_path / "v2", seed=2)
    r1 = publish_bundle(client, old, url, channel="stable", progress=QUIET)
    r2 = publish_bundle(client, new, url, channel="stable", progress=QUIET)
    assert r1.previous is None and r2.previous == r1.version
    versions = {v.version: v for v in list_versions(client, url)}
    assert set(versions) == {r1.version, r2.version}
    assert versions[r2.version].channels == ["stable"] and versions[r1.version].channels == []
    assert versions[r1.version].files == 3 and versions[r1.version].size == 301_500
    recipe_url = url.child("demo-recipe")
    other = publish_bundle(
        client, make_bundle(tmp_path / "other", recipe="other"), url, progress=QUIET
    )
    assert {v.version for v in list_versions(client, recipe_url)} == {r1.version, r2.version}
    assert other.version in {v.version for v in list_versions(client, url)}
    by_channel = fetch_bundle(client, recipe_url, tmp_path / "s", target="cpu", channel="stable",
                              progress=QUIET)  # fmt: skip
    assert by_channel.version == r2.version and same_tree(new, tmp_path / "s")
    by_version = fetch_bundle(client, recipe_url, tmp_path / "o", target="cpu",
                              version=r1.version[:10], progress=QUIET)  # fmt: skip
    assert by_version.version == r1.version and same_tree(old, tmp_path / "o")
    newest = fetch_bundle(client, recipe_url, tmp_path / "n", target="cpu", progress=QUIET)
    assert newest.version == r2.version and newest.chosen_by.startswith("newest of 2, published ")


def test_fetch_keeps_another_bundle_unless_forced(aws_env, bucket: str, tmp_path: Path) -> None:
    url = parse_s3_url(f"s3://{bucket}/m")
    client = make_client()
    r1 = publish_bundle(client, make_bundle(tmp_path / "v1", seed=1), url, progress=QUIET)
    r2 = publish_bundle(client, make_bundle(tmp_path / "v2", seed=2), url, progress=QUIET)
    dest, recipe_url = tmp_path / "dest", url.child("demo-recipe")
    fetch_bundle(client, recipe_url, dest, target="cpu", version=r1.version, progress=QUIET)
    with pytest.raises(UserError, match="--force"):
        fetch_bundle(client, recipe_url, dest, target="cpu", version=r2.version, progress=QUIET)
    assert same_tree(tmp_path / "v1", dest)
    with pytest.raises(UserError, match="not a bundle"):
        fetch_bundle(client, recipe_url, tmp_path / "v1" / "onnx", target="cpu",
                     version=r2.version, force=True, progress=QUIET)  # fmt: skip
    fetch_bundle(client, recipe_url, dest, target="cpu", version=r2.version, force=True,
                 progress=QUIET)  # fmt: skip
    assert same_tree(tmp_path / "v2", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "v1", "v2"]  # no temp dirs


def test_publish_refuses_a_bundle_changed_since_its_manifest(
    s3_server: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    dist = make_bundle(tmp_path / "b")
    (dist / "MODEL_CARD.md").write_text("edited after the build")
    res = edgepack(s3_server, "publish", dist, "--to", f"s3://{bucket}/p")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "changed: MODEL_CARD.md" in res.stderr
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_same_size_edit_is_caught_before_upload(aws_env, bucket: str, tmp_path: Path) -> None:
    dist = make_bundle(tmp_path / "b", sizes={"big.bin": 2_000_000, "small.txt": 10})
    (dist / "small.txt").write_bytes(b"0123456789")  # same size, other bytes
    url = parse_s3_url(f"s3://{bucket}/p")
    client = make_client()
    with pytest.raises(UserError, match=r"changed: small\.txt"):
        publish_bundle(client, dist, url, progress=QUIET)
    assert list_versions(client, url) == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.endswith("small.txt") or k.endswith("manifest.json") for k in keys)


def test_progress_bar_counts_every_byte_on_a_terminal(aws_env, bucket, tmp_path) -> None:
    import io

    dist = make_bundle(tmp_path / "b", sizes={"big.bin": 17_000_000, "s.txt": 5})
    screen = io.StringIO()
    bar = TransferProgress(Console(file=screen, force_terminal=True, width=120))
    publish_bundle(make_client(), dist, parse_s3_url(f"s3://{bucket}/p"), progress=bar)
    assert "upload 2 files" in screen.getvalue()
    assert "17.0/17.0 MB" in screen.getvalue()
    quiet_screen = io.StringIO()
    quiet = TransferProgress(Console(file=quiet_screen, force_terminal=True), quiet=True)
    fetch_bundle(make_client(), parse_s3_url(f"s3://{bucket}/p/demo-recipe"), tmp_path / "o",
                 target="cpu", version=read_bundle(dist).version, progress=quiet)  # fmt: skip
    assert quiet_screen.getvalue() == ""
