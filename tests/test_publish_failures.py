"""What goes wrong with S3, against a real SeaweedFS server: corrupt or missing objects,
wrong credentials, a missing bucket, a dead endpoint, a killed publish, racing publishes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rich.console import Console

from pipeline.publish.download import fetch_bundle
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import parse_s3_url
from pipeline.publish.upload import publish_bundle
from router.errors import UserError
from tests.fixtures.bundles import make_bundle

if TYPE_CHECKING:
    from tests.fixtures.s3 import SeaweedS3

QUIET = TransferProgress(Console(stderr=True), quiet=True)
EDGEPACK = [sys.executable, "-c", "from pipeline.cli import main; main()"]


def edgepack(server: SeaweedS3, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEPACK, *map(str, args)], env=server.env(**env),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def start_edgepack(server: SeaweedS3, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*EDGEPACK, *map(str, args)], env=server.env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0, res.stdout
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def published(server: SeaweedS3, bucket: str, tmp_path: Path) -> tuple[Path, str]:
    """A bundle published (in this process) under s3://bucket/p; (dist, version root key)."""
    dist = make_bundle(tmp_path / "dist")
    client = server.client()
    result = publish_bundle(client, dist, parse_s3_url(f"s3://{bucket}/p"), progress=QUIET)
    return dist, f"p/demo-recipe/cpu/{result.version}"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_corrupt_object_fails_naming_the_key_and_dest_stays_absent(s3_server, bucket, tmp_path):
    dist, root = published(s3_server, bucket, tmp_path)
    key = f"{root}/onnx/model.onnx"
    size = (dist / "onnx/model.onnx").stat().st_size
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=os.urandom(size))  # same size
    out = tmp_path / "out"
    out.mkdir()
    res = edgepack(s3_server, "fetch", f"s3://{bucket}/p/demo-recipe", "--target", "cpu",
                   "--version", root.rsplit("/", 1)[1], out / "bundle")  # fmt: skip
    assert_one_line_error(res, f"s3://{bucket}/{key}", "sha256 mismatch")
    assert list(out.iterdir()) == []  # no DEST, no partial temp folder


def test_corrupt_object_leaves_an_existing_dest_untouched(s3_server, bucket, tmp_path):
    _dist, root = published(s3_server, bucket, tmp_path)
    dest = tmp_path / "out"
    (dest / "keep").mkdir(parents=True)
    (dest / "keep" / "old.txt").write_text("previous bundle")
    (dest / "manifest.json").write_text("{}")
    s3_server.client().put_object(Bucket=bucket, Key=f"{root}/MODEL_CARD.md", Body=b"tampered")
    with pytest.raises(UserError, match=f"{root}/MODEL_CARD.md: sha256 mismatch"):
        fetch_bundle(s3_server.client(), parse_s3_url(f"s3://{bucket}/p/demo-recipe"), dest,
                     target="cpu", version=root.rsplit("/", 1)[1], force=True,
                     progress=QUIET)  # fmt: skip
    assert sorted(p.name for p in dest.rglob("*")) == ["keep", "manifest.json", "old.txt"]
    assert leftovers(tmp_path) == []


def fetch_version(s3_server, bucket: str, root: str, dest: Path) -> None:
    fetch_bundle(s3_server.client(), parse_s3_url(f"s3://{bucket}/p/demo-recipe"), dest,
                 target="cpu", version=root.rsplit("/", 1)[1], progress=QUIET)  # fmt: skip


def test_missing_object_fails_naming_the_key(s3_server, bucket, tmp_path):
    _dist, root = published(s3_server, bucket, tmp_path)
    s3_server.client().delete_object(Bucket=bucket, Key=f"{root}/onnx/config.json")
    with pytest.raises(UserError) as err:
        fetch_version(s3_server, bucket, root, tmp_path / "out")
    assert err.value.message == f"s3://{bucket}/{root}/onnx/config.json: missing"
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_corrupt_manifest_is_detected(s3_server, bucket, tmp_path):
    _dist, root = published(s3_server, bucket, tmp_path)
    client = s3_server.client()
    body = client.get_object(Bucket=bucket, Key=f"{root}/manifest.json")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"{root}/manifest.json", Body=body.replace(b"0", b"1"))
    with pytest.raises(UserError, match=f"{root}/manifest.json: sha256 mismatch"):
        fetch_version(s3_server, bucket, root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"AWS_ACCESS_KEY_ID": "nobody"}, "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_give_one_line(s3_server, bucket, tmp_path, env, needle):
    dist = make_bundle(tmp_path / "dist")
    res = edgepack(s3_server, "publish", dist, "--to", f"s3://{bucket}/p", **env)
    assert_one_line_error(res, f"s3://{bucket}", needle, "credentials")
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_missing_bucket_gives_one_line(s3_server, tmp_path):
    dist = make_bundle(tmp_path / "dist")
    res = edgepack(s3_server, "publish", dist, "--to", "s3://no-such-bucket-here/p")
    assert_one_line_error(res, "s3://no-such-bucket-here", "bucket does not exist")
    res = edgepack(s3_server, "fetch", "s3://no-such-bucket-here/p/demo-recipe", "--target",
                   "cpu", "--channel", "stable", tmp_path / "out")  # fmt: skip
    assert_one_line_error(res, "bucket does not exist")


def test_unreachable_endpoint_gives_one_line(s3_server, bucket, tmp_path):
    res = edgepack(s3_server, "list", f"s3://{bucket}/p", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert_one_line_error(res, "cannot reach the S3 endpoint")


def test_fetch_of_unknown_channel_or_version(s3_server, bucket, tmp_path):
    published(s3_server, bucket, tmp_path)
    url, client = parse_s3_url(f"s3://{bucket}/p/demo-recipe"), s3_server.client()
    with pytest.raises(UserError, match=r"channels/nightly.json: channel 'nightly' not found"):
        fetch_bundle(client, url, tmp_path / "o", target="cpu", channel="nightly", progress=QUIET)
    with pytest.raises(UserError, match="no published version 'abcdef12'"):
        fetch_bundle(client, url, tmp_path / "o", target="cpu", version="abcdef12", progress=QUIET)
    with pytest.raises(UserError, match="--channel or --version, not both"):
        fetch_bundle(client, url, tmp_path / "o", target="cpu", channel="stable",
                     version="abcdef12", progress=QUIET)  # fmt: skip
    with pytest.raises(UserError, match="demo-recipe/a100: no published versions"):
        fetch_bundle(client, url, tmp_path / "o", target="a100", progress=QUIET)


@pytest.mark.slow
def test_concurrent_publishes_both_succeed_with_one_version(s3_server, bucket, tmp_path):
    dist = make_bundle(tmp_path / "dist", sizes={"big.bin": 40_000_000, "a.txt": 100})
    procs = [start_edgepack(s3_server, "publish", dist, "--to", f"s3://{bucket}/p", "--quiet",
                            "--channel", "stable") for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sum(k.endswith("/manifest.json") for k in keys) == 1
    assert len(keys) == 4  # big.bin, a.txt, manifest.json, channels/stable.json
    res = edgepack(s3_server, "fetch", f"s3://{bucket}/p/demo-recipe", "--target", "cpu",
                   "--channel", "stable", tmp_path / "out", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out/big.bin").read_bytes() == (dist / "big.bin").read_bytes()


def wait_for_multipart(server: SeaweedS3, bucket: str, proc: subprocess.Popen) -> None:
    client = server.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if uploads:
            time.sleep(0.5)  # let a part or two land
            return
        time.sleep(0.05)
    pytest.fail(f"no multipart upload seen (publish exited {proc.poll()})")


@pytest.mark.slow
def test_killed_publish_leaves_no_version_and_rerun_completes(s3_server, bucket, tmp_path):
    dist = make_bundle(tmp_path / "dist", sizes={"a.txt": 100, "big.bin": 64_000_000})
    to = f"s3://{bucket}/p"
    proc = start_edgepack(s3_server, "publish", dist, "--to", to, "--max-bandwidth", "8MB")
    wait_for_multipart(s3_server, bucket, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.endswith("manifest.json") for k in keys)
    listed = edgepack(s3_server, "list", to)
    assert listed.returncode == 0 and "no published versions" in listed.stdout
    version = hashlib.sha256((dist / "manifest.json").read_bytes()).hexdigest()
    fetch = ("fetch", f"{to}/demo-recipe", "--target", "cpu", "--version", version)
    assert_one_line_error(edgepack(s3_server, *fetch, tmp_path / "o1"), "no published version")
    again = edgepack(s3_server, "publish", dist, "--to", to, "--quiet")
    assert again.returncode == 0, again.stderr
    assert "published demo-recipe/cpu" in again.stdout
    res = edgepack(s3_server, *fetch, tmp_path / "o2")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o2/big.bin").read_bytes() == (dist / "big.bin").read_bytes()
