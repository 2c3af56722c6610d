"""Publish one dist/<recipe>-<target>/ bundle: files first, manifest.json last (the commit).

Idempotent and safe to race: keys are content-addressed by the manifest's sha256, so a
file already present with the right size and sha256 metadata is skipped, two publishers
of the same bundle write identical bytes, and the manifest goes up with `If-None-Match: *`
so exactly one commit wins and the loser finds the same version already there.
An interrupted publish leaves files without a manifest: invisible, and completed by a re-run.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.manifest import MANIFEST, read_manifest, verify_dist
from pipeline.publish import layout
from pipeline.publish.client import check_access, head, is_precondition_failed, list_keys, s3_errors
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import S3Url

MB = 1 << 20
SHA_META = "sha256"


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


def bundle_identity(dist: Path) -> tuple[dict, str, str, str]:
    """(manifest, recipe, target, version): version is the sha256 of manifest.json's bytes."""
    manifest = read_manifest(dist)
    version = hashlib.sha256((dist / MANIFEST).read_bytes()).hexdigest()
    recipe = (
        manifest.get("recipe", {}).get("name") if isinstance(manifest.get("recipe"), dict) else None
    )
    target = manifest.get("target")
    if not isinstance(recipe, str):
        raise UserError(f"{dist / MANIFEST}: recipe.name: missing")
    if not isinstance(target, str):
        raise UserError(f"{dist / MANIFEST}: target: missing")
    return (
        manifest,
        layout.check_name("recipe", recipe),
        layout.check_name("target", target),
        version,
    )


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
    from boto3.s3.transfer import create_transfer_manager

    progress.start(f"upload {len(files)} files", sum(e["size"] for e in files))
    with progress, create_transfer_manager(client, config) as manager:
        futures = [
            manager.upload(
                str(dist / e["path"]),
                url.bucket,
                root.key(e["path"]),
                extra_args={"Metadata": {SHA_META: e["sha256"]}},
                subscribers=[progress.subscriber()],
            )
            for e in files
        ]
        for future in futures:
            future.result()


def _check_complete(client: Any, url: S3Url, root: S3Url, files: list[dict]) -> None:
    """Before the commit: every file must be visible with its size (else no manifest)."""
    listing = list_keys(client, url.bucket, root.key() + "/")
    for e in files:
        key = root.key(e["path"])
        if listing.get(key, {}).get("Size") != e["size"]:
            raise UserError(f"{url.uri(key)}: not visible after upload; not committing", code=1)


def _commit(client: Any, url: S3Url, key: str, body: bytes, version: str) -> bool:
    """Put the manifest if absent. False when a concurrent publisher committed it first."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(
            Bucket=url.bucket, Key=key, Body=body, IfNoneMatch="*",
            ContentType="application/json", Metadata={SHA_META: version},
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
    progress: TransferProgress, config: Any = None,
) -> PublishResult:  # fmt: skip
    """Upload the bundle at `dist` under `url`; move `channel` to it when given."""
    from pipeline.publish.channels import write_channel

    manifest, recipe, target, version = bundle_identity(dist)
    if channel is not None:
        layout.check_name("channel", channel)
    root = layout.version_root(url, recipe, target, version)
    result = PublishResult(recipe, target, version, str(root))
    manifest_key = root.key(MANIFEST)
    check_access(client, url)
    with s3_errors(url):
        if head(client, url.bucket, manifest_key) is not None:
            result.already_published = True
            result.skipped = [e["path"] for e in manifest["files"]]
        else:
            _publish_files(client, dist, url, root, manifest, result, progress, config)
            body = (dist / MANIFEST).read_bytes()
            result.committed_by_other = not _commit(client, url, manifest_key, body, version)
        if channel is not None:
            result.channel = channel
            result.previous = write_channel(client, url, recipe, target, channel, version)
    return result


def _publish_files(
    client: Any, dist: Path, url: S3Url, root: S3Url, manifest: dict,
    result: PublishResult, progress: TransferProgress, config: Any,
) -> None:  # fmt: skip
    problems = verify_dist(dist)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; … {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise UserError(f"{dist}: files differ from {MANIFEST} ({shown}); rebuild it")
    files = manifest["files"]
    todo, done = _split_present(client, url, root, files)
    result.skipped = [e["path"] for e in done]
    if todo:
        _upload_files(client, dist, url, root, todo, progress, config or transfer_config())
    result.uploaded = [e["path"] for e in todo]
    result.uploaded_bytes = sum(e["size"] for e in todo)
    _check_complete(client, url, root, files)
