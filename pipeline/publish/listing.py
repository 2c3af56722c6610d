"""`edgepack list`: committed versions (those with a manifest), their channels, sizes, dates.

One paginated listing of the prefix gives every key with its size and date, so sizes and
dates cost no extra request per version; only channel pointers are read (they are tiny).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.table import Table

from pipeline.manifest import MANIFEST
from pipeline.publish import layout
from pipeline.publish.channels import read_channel
from pipeline.publish.client import list_keys
from pipeline.publish.s3url import S3Url
from pipeline.signature import SIGNATURE


@dataclass
class VersionInfo:
    recipe: str
    target: str
    version: str
    published: datetime
    """When the manifest (the commit) landed."""
    files: int = 0
    size: int = 0
    channels: list[str] = field(default_factory=list)
    signed: bool = False
    """A manifest.json.sig sits beside the manifest (checked by fetch, not by list)."""


def list_versions(client: Any, url: S3Url) -> list[VersionInfo]:
    """Committed versions under `url` (a base prefix or a base/<recipe> prefix), newest first."""
    prefix = url.key() + "/" if url.key() else ""
    keys = list_keys(client, url.bucket, prefix)
    versions: dict[str, VersionInfo] = {}
    for key, entry in keys.items():
        ref = layout.parse_manifest_key(key)
        if ref is not None:
            versions[key[: -len(MANIFEST)]] = VersionInfo(
                ref.recipe, ref.target, ref.version, entry["LastModified"]
            )
    for key, entry in keys.items():
        info = _owner(versions, key)
        if info is None or key.removesuffix(MANIFEST) in versions:  # none, or the manifest
            continue
        if key.removesuffix(SIGNATURE) in versions:
            info.signed = True
        else:
            info.files += 1
            info.size += entry["Size"]
    _attach_channels(client, url, keys, versions)
    return sorted(versions.values(), key=lambda v: (v.recipe, v.target, v.published), reverse=True)


_SHA_DIR = re.compile(r"(?:^|/)[0-9a-f]{64}/")


def _owner(versions: dict[str, VersionInfo], key: str) -> VersionInfo | None:
    """The committed version whose folder holds `key` (files may sit in sub-folders)."""
    for match in _SHA_DIR.finditer(key):
        if (info := versions.get(key[: match.end()])) is not None:
            return info
    return None


def _attach_channels(
    client: Any, url: S3Url, keys: dict[str, dict], versions: dict[str, VersionInfo]
) -> None:
    by_ref = {(v.recipe, v.target, v.version): v for v in versions.values()}
    for key in keys:
        parsed = layout.parse_channel_key(key)
        if parsed is None:
            continue
        recipe, target, channel = parsed
        base = S3Url(url.bucket, key[: -len(f"{recipe}/{target}/channels/{channel}.json")])
        pointer = read_channel(client, base, recipe, target, channel)
        info = by_ref.get((recipe, target, pointer["version"])) if pointer else None
        if info is not None:
            info.channels.append(channel)


def matching_versions(client: Any, base: S3Url, recipe: str, target: str, prefix: str) -> set[str]:
    """Full sha256s of the committed versions of recipe/target that start with `prefix`."""
    root = layout.target_root(base, recipe, target)
    return {
        ref.version
        for key in list_keys(client, base.bucket, root.key() + "/")
        if (ref := layout.parse_manifest_key(key)) and ref.version.startswith(prefix)
    }


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def versions_table(url: S3Url, versions: list[VersionInfo]) -> Table:
    table = Table("recipe", "target", "version", "channels", "files", "size", "signed",
                  "published (UTC)", title=str(url))  # fmt: skip
    for v in versions:
        table.add_row(
            v.recipe, v.target, v.version[:12], ", ".join(sorted(v.channels)) or "-",
            str(v.files), human_size(v.size), "yes" if v.signed else "-",
            v.published.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
    return table
