"""Publish one dist/<recipe>-<target>/ bundle: files first, manifest.json last (the commit).

Idempotent and safe to race: keys are content-addressed by the manifest's sha256, so a
file already present with the right size and sha256 metadata is skipped, two publishers
of the same bundle write identical bytes, and the manifest goes up with `If-None-Match: *`
so exactly one commit wins and the loser finds the same version already there.
An interrupted publish leaves files without a manifest: invisible, and completed by a re-run.
With a signing key, manifest.json.sig goes up just before the manifest (and is added to a
version published unsigned before); a copy lands in the dist folder for CI artifacts.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.fingerprint import sha256_file
from pipeline.manifest import MANIFEST, list_files, read_manifest
from pipeline.publish import layout
from pipeline.publish.channels import write_channel
from pipeline.publish.client import (
    check_access,
    error_code,
    head,
    is_precondition_failed,
    list_keys,
    s3_errors,
)
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import S3Url
from pipeline.publish.signing import Signer
from pipeline.signature import SIGNATURE
from router.errors import UserError

MB = 1 << 20
SHA_META = "sha256"
STALE_UPLOAD = timedelta(hours=24)


@dataclass
class PublishResult:
    recipe: str
    target: str
    version: str
    root: str
    """s3:// URL of the version folder."""
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    already_published: bool = False
    committed_by_other: bool = False
    channel: str | None = None
    previous: str | None = None
    aborted_stale: int = 0
    """Multipart uploads of killed publishes of this version, cleaned up after the commit."""
    signed_by: str | None = None


def transfer_config(max_bandwidth: int | None = None) -> Any:
    """Multipart above 16 MiB in 16 MiB parts, 8 parts/files in flight across the bundle."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=16 * MB,
        multipart_chunksize=16 * MB,
        max_concurrency=8,
        use_threads=True,
        max_bandwidth=max_bandwidth,
    )


@dataclass(frozen=True)
class Bundle:
    manifest: dict
    body: bytes
    """manifest.json's bytes, read once: what is hashed is what is committed."""
    recipe: str
    target: str
    version: str
    """sha256 of `body`: the version's name in every key."""


def read_bundle(dist: Path) -> Bundle:
    manifest = read_manifest(dist)
    body = (dist / MANIFEST).read_bytes()
    recipe = manifest["recipe"].get("name") if isinstance(manifest.get("recipe"), dict) else None
    target = manifest.get("target")
    if not isinstance(recipe, str):
        raise UserError(f"{dist / MANIFEST}: recipe.name: missing")
    if not isinstance(target, str):
        raise UserError(f"{dist / MANIFEST}: target: missing")
    return Bundle(
        manifest, body, layout.check_name("recipe", recipe), layout.check_name("target", target),
        hashlib.sha256(body).hexdigest(),
    )  # fmt: skip


def _present(client: Any, bucket: str, key: str, entry: dict, listing: dict[str, dict]) -> bool:
    """True when `key` already holds this file (size from the listing, sha256 from metadata)."""
    if key not in listing or listing[key]["Size"] != entry["size"]:
        return False
    meta = head(client, bucket, key)
    return meta is not None and meta.get("Metadata", {}).get(SHA_META) == entry["sha256"]


def _split_present(
    client: Any, url: S3Url, root: S3Url, files: list[dict]
) -> tuple[list[dict], list[dict]]:
    listing = list_keys(client, url.bucket, root.key() + "/")
    with ThreadPoolExecutor(max_workers=8) as pool:
        flags = list(
            pool.map(lambda e: _present(client, url.bucket, root.key(e["path"]), e, listing), files)
        )
    todo = [e for e, ok in zip(files, flags, strict=True) if not ok]
    done = [e for e, ok in zip(files, flags, strict=True) if ok]
    return todo, done


def _upload_files(
    client: Any, dist: Path, url: S3Url, root: S3Url, files: list[dict],
    progress: TransferProgress, config: Any,
) -> None:  # fmt: skip
    """Hash each file, then hand it to one transfer manager for the whole bundle.

    A file is submitted only once its sha256 matches the manifest, so no unverified byte
    is ever uploaded; hashing the next file overlaps the upload of the previous ones.
    A mismatch cancels the transfers in flight and nothing is committed.
    """
    from boto3.s3.transfer import create_transfer_manager

    progress.start(f"upload {len(files)} files", sum(e["size"] for e in files))
    with progress, create_transfer_manager(client, config) as manager:
        futures = []
        for e in sorted(files, key=lambda e: -e["size"]):
            if sha256_file(dist / e["path"]) != e["sha256"]:
                raise _changed(dist, [f"changed: {e['path']}"])
            futures.append(
                manager.upload(
                    str(dist / e["path"]), url.bucket, root.key(e["path"]),
                    extra_args={"Metadata": {SHA_META: e["sha256"]}},
                    subscribers=[progress.subscriber()],
                )
            )  # fmt: skip
        for future in futures:
            future.result()


def _changed(dist: Path, problems: list[str]) -> UserError:
    more = f"; … {len(problems) - 3} more" if len(problems) > 3 else ""
    return UserError(f"{dist}: files differ from {MANIFEST} ({'; '.join(problems[:3])}{more}); "
                     "rebuild it")  # fmt: skip


def _check_file_set(dist: Path, files: list[dict]) -> None:
    """Same paths and sizes as the manifest (cheap); contents are hashed as they upload."""
    expected = {e["path"]: e["size"] for e in files}
    actual = {p.relative_to(dist).as_posix(): p for p in list_files(dist)}
    problems = [f"missing: {p}" for p in sorted(expected.keys() - actual.keys())]
    problems += [f"extra: {p}" for p in sorted(actual.keys() - expected.keys())]
    problems += [f"changed: {p}" for p in sorted(expected.keys() & actual.keys())
                 if actual[p].stat().st_size != expected[p]]  # fmt: skip
    if problems:
        raise _changed(dist, problems)


def _commit(client: Any, url: S3Url, key: str, body: bytes, version: str) -> bool:
    """Put the manifest if absent. False when a concurrent publisher committed it first."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(
            Bucket=url.bucket, Key=key, Body=body, IfNoneMatch="*",
            ContentType="application/json",
            Metadata={SHA_META: version, layout.PUBLISHED_META: str(time.time_ns())},
        )  # fmt: skip
        return True
    except ClientError as exc:
        if not is_precondition_failed(exc):
            raise
    existing = client.get_object(Bucket=url.bucket, Key=key)["Body"].read()
    if hashlib.sha256(existing).hexdigest() != version:
        raise UserError(f"{url.uri(key)}: exists with different content (corrupt?)", code=1)
    return False


def publish_bundle(
    client: Any, dist: Path, url: S3Url, *, channel: str | None = None,
    progress: TransferProgress, config: Any = None, stale_after: timedelta = STALE_UPLOAD,
    signer: Signer | None = None,
) -> PublishResult:  # fmt: skip
    """Upload the bundle at `dist` under `url`; move `channel` to it when given."""
    bundle = read_bundle(dist)
    recipe, target, version = bundle.recipe, bundle.target, bundle.version
    if channel is not None:
        layout.check_name("channel", channel)
    root = layout.version_root(url, recipe, target, version)
    result = PublishResult(recipe, target, version, str(root))
    manifest_key = root.key(MANIFEST)
    check_access(client, url)
    signature = signer.sign(bundle.body) if signer else None
    with s3_errors(url):
        if head(client, url.bucket, manifest_key) is not None:
            result.already_published = True
            result.skipped = [e["path"] for e in bundle.manifest["files"]]
            _put_signature(client, url, root, dist, signature, result)
        else:
            _publish_files(client, dist, url, root, bundle.manifest, result, progress, config)
            _put_signature(client, url, root, dist, signature, result)
            result.committed_by_other = not _commit(client, url, manifest_key, bundle.body, version)
            result.aborted_stale = abort_stale_uploads(client, url, root, stale_after)
        if channel is not None:
            result.channel = channel
            result.previous = write_channel(client, url, recipe, target, channel, version)
    return result


def _put_signature(
    client: Any, url: S3Url, root: S3Url, dist: Path, record: bytes | None, result: PublishResult
) -> None:
    """Upload the signature record and keep a copy beside the dist folder's manifest."""
    if record is None:
        return
    client.put_object(
        Bucket=url.bucket, Key=root.key(SIGNATURE), Body=record, ContentType="application/json"
    )
    (dist / SIGNATURE).write_bytes(record)
    result.signed_by = json.loads(record)["key"]


def abort_stale_uploads(client: Any, url: S3Url, root: S3Url, older_than: timedelta) -> int:
    """Abort the unfinished multipart uploads under a version that are older than `older_than`.

    A killed publish leaves its parts behind (invisible, but billed). Younger uploads may
    belong to a publish still running, so they stay; a bucket lifecycle rule
    (AbortIncompleteMultipartUpload) is the catch-all. Lacking the permission is not an error.
    """
    from botocore.exceptions import ClientError

    cutoff = datetime.now(UTC) - older_than
    aborted = 0
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=url.bucket, Prefix=root.key() + "/"
        )
        for upload in (u for page in pages for u in page.get("Uploads", [])):
            if upload["Initiated"] <= cutoff:
                client.abort_multipart_upload(
                    Bucket=url.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
    except ClientError as exc:
        if error_code(exc) not in {"AccessDenied", "403", "NotImplemented"}:
            raise
    return aborted


def _publish_files(
    client: Any, dist: Path, url: S3Url, root: S3Url, manifest: dict,
    result: PublishResult, progress: TransferProgress, config: Any,
) -> None:  # fmt: skip
    files = manifest["files"]
    _check_file_set(dist, files)
    todo, done = _split_present(client, url, root, files)
    result.skipped = [e["path"] for e in done]
    if todo:
        _upload_files(client, dist, url, root, todo, progress, config or transfer_config())
    result.uploaded = [e["path"] for e in todo]
    result.uploaded_bytes = sum(e["size"] for e in todo)
