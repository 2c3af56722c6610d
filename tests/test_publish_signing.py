"""Signed bundles: `publish --sign`, `fetch`/`verify --public-key`, against the real SeaweedFS
S3 server and moto's KMS server (both over HTTP through boto3), with local Ed25519 keys.

The threat: someone who can write to the bucket but holds no signing key. Every way they
can change what a user gets (a file, the manifest, the signature, their own key) must be
refused by `fetch` and by `verify`, for each kind of key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from pipeline.manifest import MANIFEST, build_manifest, write_manifest
from pipeline.publish.client import make_client
from pipeline.publish.download import fetch_bundle
from pipeline.publish.layout import version_root
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import parse_s3_url
from pipeline.publish.signing import Signer, Verifier, generate_key, signer, verifier
from pipeline.publish.upload import publish_bundle
from pipeline.signature import (
    SIGNATURE,
    SignatureError,
    make_record,
    statement,
    verify_tree,
    verify_with_public_key,
)
from pipeline.verify_cli import verify
from router.errors import UserError
from tests.fixtures.bundles import make_bundle

if TYPE_CHECKING:
    from tests.fixtures.kms import MotoKMS

EDGEPACK = [sys.executable, "-c", "from pipeline.cli import main; main()"]
QUIET = TransferProgress(Console(stderr=True), quiet=True)
KINDS = ("ed25519", "kms", "kms-exported-pem")


@dataclass(frozen=True)
class Keys:
    sign: str
    """What `publish --sign` is given."""
    public: str
    """What `fetch`/`verify --public-key` are given."""
    attacker: str
    """A key of the same kind that the bucket writer holds instead."""


@pytest.fixture(scope="module")
def shared_bucket(s3_server) -> Iterator[str]:
    """One bucket for the module (SeaweedFS grows volumes per bucket); tests use own prefixes."""
    name = s3_server.new_bucket()
    yield name
    s3_server.remove_bucket(name)


@pytest.fixture
def prefix(shared_bucket: str) -> str:
    return f"s3://{shared_bucket}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kms_env(aws_env: dict, kms_server: MotoKMS, monkeypatch: pytest.MonkeyPatch) -> dict:
    """boto3's chain in this process: S3 on SeaweedFS, KMS on moto (per-service endpoints)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kms_server.endpoint)
    return {**aws_env, "AWS_ENDPOINT_URL_KMS": kms_server.endpoint}


def make_keys(kind: str, tmp_path: Path, kms_server: MotoKMS) -> Keys:
    if kind == "ed25519":
        generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
        generate_key(tmp_path / "evil.pem", tmp_path / "evil.pub.pem")
        return Keys(
            str(tmp_path / "k.pem"), str(tmp_path / "k.pub.pem"), str(tmp_path / "evil.pem")
        )
    mine, theirs = kms_server.new_key(), kms_server.new_key()
    public = f"kms:{mine.alias}"
    if kind == "kms-exported-pem":
        got = edgepack(os.environ, "public-key", f"kms:{mine.alias}", tmp_path / "kms.pub.pem")
        assert got.returncode == 0, got.stderr
        public = str(tmp_path / "kms.pub.pem")
    return Keys(f"kms:{mine.alias}", public, f"kms:{theirs.key_id}")


def edgepack(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEPACK, *map(str, args)], env=dict(env), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@dataclass
class Published:
    url: str
    base: object
    client: object
    keys: Keys
    dist: Path
    version: str


@pytest.fixture(params=KINDS)
def published(request, kms_env, kms_server, prefix: str, tmp_path: Path) -> Published:
    """v1, signed with the user's key, on channel stable."""
    keys = make_keys(request.param, tmp_path, kms_server)
    dist = make_bundle(tmp_path / "dist" / "demo-recipe-cpu", seed=1)
    client = make_client()
    base = parse_s3_url(prefix)
    result = publish_bundle(client, dist, base, channel="stable", progress=QUIET,
                            signer=signer(keys.sign))  # fmt: skip
    assert result.signed_by and (dist / SIGNATURE).is_file()
    return Published(f"{prefix}/demo-recipe", base, client, keys, dist, result.version)


def fetch(p: Published, dest: Path, public: str | None = "theirs", **how) -> object:
    return fetch_bundle(
        p.client, parse_s3_url(p.url), dest, target="cpu", progress=QUIET,
        verifier=verifier(p.keys.public if public == "theirs" else public), **how,
    )  # fmt: skip


def refused(action, *fragments: str) -> str:
    with pytest.raises(UserError) as caught:
        action()
    message = caught.value.message
    assert "\n" not in message and all(f in message for f in fragments), message
    return message


def attacker_bundle(p: Published, tmp_path: Path, sign: str | None) -> str:
    """The bucket writer publishes their own v2 (signed with their key, or not) as stable."""
    evil = make_bundle(tmp_path / "evil" / "demo-recipe-cpu", seed=666)
    result = publish_bundle(p.client, evil, p.base, channel="stable", progress=QUIET,
                            signer=signer(sign))  # fmt: skip
    return result.version


def test_signed_bundle_fetches_and_verifies(published: Published, tmp_path: Path) -> None:
    got = fetch(published, tmp_path / "a", channel="stable")
    assert got.version == published.version and got.signed_by
    assert (tmp_path / "a" / SIGNATURE).read_bytes() == (published.dist / SIGNATURE).read_bytes()
    verify(tmp_path / "a", public_key=published.keys.public)  # raises on failure
    verify(published.dist, public_key=published.keys.public)


def test_manifest_replaced_unsigned_is_refused(published: Published, tmp_path: Path) -> None:
    evil = attacker_bundle(published, tmp_path, sign=None)
    refused(lambda: fetch(published, tmp_path / "a", channel="stable"), evil, "not signed")
    refused(lambda: fetch(published, tmp_path / "b"), "not signed")  # newest is theirs too
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    got = fetch(published, tmp_path / "c", public=None, channel="stable")  # no key: no check
    assert got.version == evil and got.signed_by is None


def test_manifest_replaced_with_copied_signature_is_refused(published: Published, tmp_path):
    evil = attacker_bundle(published, tmp_path, sign=None)
    p = published
    old_sig = version_root(p.base, "demo-recipe", "cpu", p.version).key(SIGNATURE)
    new_sig = version_root(p.base, "demo-recipe", "cpu", evil).key(SIGNATURE)
    p.client.copy_object(Bucket=p.base.bucket, Key=new_sig,
                         CopySource={"Bucket": p.base.bucket, "Key": old_sig})  # fmt: skip
    refused(lambda: fetch(p, tmp_path / "a", channel="stable"), "made for another manifest.json")


def test_attacker_key_is_refused(published: Published, tmp_path: Path) -> None:
    attacker_bundle(published, tmp_path, sign=published.keys.attacker)
    refused(lambda: fetch(published, tmp_path / "a", channel="stable"), "does not verify")


def test_signature_removed_is_refused(published: Published, tmp_path: Path) -> None:
    p = published
    key = version_root(p.base, "demo-recipe", "cpu", p.version).key(SIGNATURE)
    p.client.delete_object(Bucket=p.base.bucket, Key=key)
    refused(lambda: fetch(p, tmp_path / "a", version=p.version[:12]), "not signed")


def test_file_changed_in_bucket_is_refused(published: Published, tmp_path: Path) -> None:
    p = published
    key = version_root(p.base, "demo-recipe", "cpu", p.version).key("MODEL_CARD.md")
    p.client.put_object(Bucket=p.base.bucket, Key=key, Body=b"x" * 500)  # same size
    refused(lambda: fetch(p, tmp_path / "a", channel="stable"), "MODEL_CARD.md", "sha256 mismatch")


def test_verify_refuses_every_local_tampering(published: Published, tmp_path: Path) -> None:
    p = published
    dest = tmp_path / "a"
    fetch(p, dest, channel="stable")
    check = lambda: verify(dest, public_key=p.keys.public)  # noqa: E731
    card = dest / "MODEL_CARD.md"
    original = card.read_bytes()
    card.write_bytes(b"y" * len(original))  # a file changed
    assert "1 problem" in refused(check, "FAILED")
    write_manifest(dest, build_manifest(dest, recipe={"name": "demo-recipe", "sha256": "0" * 64},
                   target="cpu", stages={}, metrics={}))  # fmt: skip  # manifest replaced to match
    refused(check, "made for another manifest.json")
    resigned = Signer(p.keys.attacker).sign((dest / MANIFEST).read_bytes())
    (dest / SIGNATURE).write_bytes(resigned)  # re-signed with the wrong key
    refused(check, "does not verify")
    (dest / SIGNATURE).unlink()  # signature removed
    refused(check, "not signed")


def test_cli_refuses_with_one_line_and_exit_1(published: Published, tmp_path: Path) -> None:
    attacker_bundle(published, tmp_path, sign=published.keys.attacker)
    env = {**os.environ, "EDGEPACK_PUBLIC_KEY": published.keys.public}
    got = edgepack(env, "fetch", published.url, tmp_path / "a", "--target", "cpu", "--quiet")
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.count("\n") == 1 and "refusing this bundle" in got.stderr, got.stderr
    (published.dist / SIGNATURE).unlink()
    got = edgepack(env, "verify", published.dist)
    assert got.returncode == 1 and got.stderr.count("\n") == 1 and "not signed" in got.stderr


def test_publish_signs_an_already_published_version(kms_env, prefix, tmp_path: Path) -> None:
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    dist = make_bundle(tmp_path / "d", seed=3)
    client, base = make_client(), parse_s3_url(prefix)
    publish_bundle(client, dist, base, progress=QUIET)
    again = publish_bundle(
        client, dist, base, progress=QUIET, signer=signer(str(tmp_path / "k.pem"))
    )
    assert again.already_published and again.signed_by
    got = fetch_bundle(client, parse_s3_url(f"{prefix}/demo-recipe"), tmp_path / "o",
                       target="cpu", progress=QUIET,
                       verifier=Verifier(str(tmp_path / "k.pub.pem")))  # fmt: skip
    assert got.signed_by == again.signed_by


def test_bad_key_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key\n")
    assert "--sign" in refused(lambda: signer(str(tmp_path / "junk.pem")))
    assert "--public-key" in refused(lambda: verifier(str(tmp_path / "missing.pem")))
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    refused(lambda: generate_key(tmp_path / "k.pem", tmp_path / "x.pem"), "exists")
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"


def _ed25519() -> tuple[ed25519.Ed25519PrivateKey, bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    manifest = json.dumps({"files": [], "n": 1}).encode()
    record = make_record(manifest, "ED25519", "k", key.sign(statement(manifest, "k")))
    return key, manifest, record


KEY, MANIFEST_BYTES, RECORD = _ed25519()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(["manifest", "record"]),
    position=st.integers(min_value=0, max_value=10_000),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_is_refused(which: str, position: int, flip: int) -> None:
    """Property: changing any one byte of the manifest or of its signature record is refused,
    unless the record still says exactly the same thing (JSON whitespace)."""
    manifest, record = bytearray(MANIFEST_BYTES), bytearray(RECORD)
    target = manifest if which == "manifest" else record
    target[position % len(target)] ^= flip
    try:
        verified = verify_with_public_key(bytes(manifest), bytes(record), KEY.public_key())
    except SignatureError:
        return
    original = verify_with_public_key(MANIFEST_BYTES, RECORD, KEY.public_key())
    assert bytes(manifest) == MANIFEST_BYTES and verified == original


def test_device_check_refuses_added_and_changed_files(tmp_path: Path) -> None:
    """What infer.py and build_engine.sh run on the device (pipeline/signature.py's verify_tree)."""
    root = make_bundle(tmp_path / "b", sizes={"jetson/model.qdq.onnx": 2000, "other.bin": 10})
    key = ed25519.Ed25519PrivateKey.generate()
    body = (root / MANIFEST).read_bytes()
    (root / SIGNATURE).write_bytes(
        make_record(body, "ED25519", "k", key.sign(statement(body, "k")))
    )
    check = lambda: verify_tree(root, key.public_key(), "jetson/", frozenset({"jetson/model.plan"}))  # noqa: E731
    assert check() == 1
    (root / "jetson" / "model.plan").write_bytes(b"engine built on the device")
    (root / "other.bin").write_bytes(b"outside jetson/: not this check's business")
    assert check() == 1
    (root / "jetson" / "extra.py").write_text("import os\n")
    with pytest.raises(SignatureError, match=r"extra\.py: not in the signed"):
        check()
    (root / "jetson" / "extra.py").unlink()
    onnx = root / "jetson" / "model.qdq.onnx"
    onnx.write_bytes(bytes(b ^ 1 for b in onnx.read_bytes()))
    with pytest.raises(SignatureError, match=r"model\.qdq\.onnx: changed since it was signed"):
        check()


def test_unknown_kms_key_fails_before_any_upload(kms_env, prefix: str, tmp_path: Path) -> None:
    client, base = make_client(), parse_s3_url(prefix)
    dist = make_bundle(tmp_path / "d", seed=4)
    publishing = lambda: publish_bundle(client, dist, base, progress=QUIET,  # noqa: E731
                                        signer=signer("kms:alias/no-such-key"))  # fmt: skip
    refused(publishing, "kms:alias/no-such-key: NotFoundException")
    assert "Contents" not in client.list_objects_v2(Bucket=base.bucket, Prefix=base.prefix)
