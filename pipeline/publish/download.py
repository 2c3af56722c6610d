"""Fetch one published version: download into a temp folder beside DEST, verify every
file's sha256 against the manifest (each as soon as it lands, while the rest download),
and only then rename the folder into place.

The manifest itself is checked against the version's name (its own sha256), so a
corrupted manifest cannot vouch for corrupted files; with a public key configured, its
signature (manifest.json.sig) must verify before any file is downloaded, so a manifest
published by someone without the signing key is refused. Any failure removes the temp
folder: DEST is either untouched or the complete, verified bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.fingerprint import sha256_file
from pipeline.manifest import MANIFEST, verify_dist
from pipeline.publish import layout
from pipeline.publish.channels import read_channel
from pipeline.publish.client import check_access, head, is_not_found, s3_errors
from pipeline.publish.listing import list_versions, matching_versions
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import S3Url
from pipeline.publish.signing import Verifier
from pipeline.publish.upload import transfer_config
from pipeline.signature import SIGNATURE
from router.errors import UserError


@dataclass
class FetchResult:
    version: str
    dest: Path
    files: int
    bytes: int
    chosen_by: str
    """How the version was picked: `channel stable`, `version 3f2a…`, `newest of 4, published …`."""
    already_present: bool = False
    signed_by: str | None = None
    """The key whose signature was checked; None when no public key was configured."""


def resolve(
    client: Any, base: S3Url, recipe: str, target: str, channel: str | None, version: str | None
) -> tuple[str, str]:
    """The full version sha256 named by `--channel`, a (prefix of a) `--version`, or neither
    (the newest committed version), and how it was chosen."""
    if channel is not None:
        pointer = read_channel(client, base, recipe, target, layout.check_name("channel", channel))
        if pointer is None:
            key = layout.channel_key(base, recipe, target, channel)
            raise UserError(f"{base.uri(key)}: channel {channel!r} not found", code=1)
        return pointer["version"], f"channel {channel}"
    if version is None:
        return _newest(client, base, recipe, target)
    matches = matching_versions(client, base, recipe, target, layout.check_version(version))
    where = layout.target_root(base, recipe, target)
    if not matches:
        raise UserError(f"{where}: no published version {version!r}", code=1)
    if len(matches) > 1:
        raise UserError(f"{where}: version {version!r} is ambiguous; give more characters", code=1)
    return matches.pop(), f"version {version}"


def _newest(client: Any, base: S3Url, recipe: str, target: str) -> tuple[str, str]:
    """The committed version whose manifest landed last (list's `published` date; within
    the same second, the commit time publish stored on the manifest)."""
    where = layout.target_root(base, recipe, target)
    found = [v for v in list_versions(client, where) if (v.recipe, v.target) == (recipe, target)]
    if not found:
        raise UserError(f"{where}: no published versions", code=1)
    latest = max(v.published for v in found)
    tied = [v for v in found if v.published == latest]
    newest = max(
        tied, key=lambda v: (_committed_ns(client, base, v.version, recipe, target), v.version)
    )
    when = newest.published.strftime("%Y-%m-%d %H:%M:%S UTC")
    return newest.version, f"newest of {len(found)}, published {when}"


def _committed_ns(client: Any, base: S3Url, version: str, recipe: str, target: str) -> int:
    meta = head(client, base.bucket, layout.manifest_key(base, recipe, target, version)) or {}
    value = meta.get("Metadata", {}).get(layout.PUBLISHED_META, "0")
    return int(value) if value.isdigit() else 0


def _get_signature(client: Any, base: S3Url, root: S3Url) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=base.bucket, Key=root.key(SIGNATURE))["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _get_manifest(client: Any, base: S3Url, key: str, version: str) -> tuple[dict, bytes]:
    """The manifest and its bytes, checked against the version (its own sha256)."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=base.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            raise UserError(f"{base.uri(key)}: missing (version not published)", code=1) from None
        raise
    if hashlib.sha256(body).hexdigest() != version:
        raise UserError(f"{base.uri(key)}: sha256 mismatch (corrupt manifest)", code=1)
    manifest = json.loads(body)
    for entry in manifest["files"]:
        path = PurePosixPath(entry["path"])
        if path.is_absolute() or ".." in path.parts or entry["path"] == MANIFEST:
            raise UserError(f"{base.uri(key)}: unsafe file path {entry['path']!r}", code=1)
    return manifest, body


def _download_all(
    client: Any, base: S3Url, root: S3Url, files: list[dict], tmp: Path,
    progress: TransferProgress, config: Any,
) -> None:  # fmt: skip
    from boto3.s3.transfer import create_transfer_manager
    from botocore.exceptions import ClientError

    progress.start(f"download {len(files)} files", sum(e["size"] for e in files))
    with progress, create_transfer_manager(client, config) as manager:
        futures = []
        for e in files:
            (tmp / e["path"]).parent.mkdir(parents=True, exist_ok=True)
            futures.append(
                manager.download(base.bucket, root.key(e["path"]), str(tmp / e["path"]),
                                 subscribers=[progress.subscriber()])
            )  # fmt: skip
        for e, future in zip(files, futures, strict=True):
            try:
                future.result()
            except ClientError as exc:
                if is_not_found(exc):
                    raise UserError(f"{base.uri(root.key(e['path']))}: missing", code=1) from None
                raise
            _verify(base, root, e, tmp)  # while the later files are still downloading


def _verify(base: S3Url, root: S3Url, entry: dict, tmp: Path) -> None:
    path = tmp / entry["path"]
    if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
        key = base.uri(root.key(entry["path"]))
        raise UserError(f"{key}: sha256 mismatch with the manifest (corrupt object)", code=1)


def _place(tmp: Path, dest: Path, force: bool) -> None:
    """Rename the verified folder into place; with force, swap out an existing DEST."""
    if dest.exists() and dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if not dest.exists():
        os.rename(tmp, dest)
        return
    if not force:
        raise UserError(f"{dest}: exists and holds another bundle (use --force to replace it)")
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    os.rename(dest, old / "bundle")
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _check_dest(dest: Path, force: bool) -> None:
    """DEST must be new, empty, or (with --force) a bundle: never the working folder."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not force:
        raise UserError(f"{dest}: exists and holds another bundle (use --force to replace it)")
    if Path.cwd().resolve().is_relative_to(dest.resolve()):
        raise UserError(f"{dest}: is the current folder or above it; refusing to replace it")
    if not (dest / MANIFEST).is_file():
        raise UserError(f"{dest}: not a bundle (no {MANIFEST}); refusing to replace it")


def _already_there(dest: Path, version: str) -> bool:
    manifest = dest / MANIFEST
    return (
        manifest.is_file()
        and hashlib.sha256(manifest.read_bytes()).hexdigest() == version
        and not verify_dist(dest)
    )


def fetch_bundle(
    client: Any, url: S3Url, dest: Path, *, target: str, channel: str | None = None,
    version: str | None = None, force: bool = False, progress: TransferProgress,
    config: Any = None, verifier: Verifier | None = None,
) -> FetchResult:  # fmt: skip
    """Fetch `url` (= s3://bucket/prefix/<recipe>) for `target` into `dest`, verified.

    Neither `channel` nor `version`: the newest committed version.
    """
    if channel is not None and version is not None:
        raise UserError("fetch: give --channel or --version, not both")
    base, recipe = url.parent_and_name()
    layout.check_name("recipe", recipe)
    layout.check_name("target", target)
    check_access(client, url)
    with s3_errors(url):
        full, chosen_by = resolve(client, base, recipe, target, channel, version)
        root = layout.version_root(base, recipe, target, full)
        manifest, manifest_bytes = _get_manifest(client, base, root.key(MANIFEST), full)
        signature = _get_signature(client, base, root)
        record = verifier.check(manifest_bytes, signature, str(root)) if verifier else None
        files = manifest["files"]
        result = FetchResult(full, dest, len(files), sum(e["size"] for e in files), chosen_by,
                             signed_by=record["key"] if record else None)  # fmt: skip
        if _already_there(dest, full):
            _write_signature(dest, signature)
            result.already_present = True
            return result
        _check_dest(dest, force)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
        try:
            _download_all(client, base, root, files, tmp, progress, config or transfer_config())
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            _write_signature(tmp, signature)
            _place(tmp, dest, force)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _write_signature(folder: Path, signature: bytes | None) -> None:
    """Keep the signature beside the manifest so `verify --public-key` works offline."""
    if signature is not None:
        (folder / SIGNATURE).write_bytes(signature)
    else:
        (folder / SIGNATURE).unlink(missing_ok=True)
