"""Where each object of a published bundle lives; the one place that knows the key scheme."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.manifest import MANIFEST
from pipeline.publish.s3url import S3Url
from router.errors import UserError

CHANNELS = "channels"
PUBLISHED_META = "published-ns"
"""Manifest metadata: when it was committed, finer than S3's one-second LastModified."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# .../<recipe>/<target>/<sha256>/manifest.json, parsed from the end of the key.
_MANIFEST_KEY = re.compile(r"(?:^|/)([^/]+)/([^/]+)/([0-9a-f]{64})/manifest\.json$")
_CHANNEL_KEY = re.compile(r"(?:^|/)([^/]+)/([^/]+)/channels/([^/]+)\.json$")


def check_name(kind: str, value: str) -> str:
    """Recipe, target and channel names become key components: no slashes, no dots-only."""
    if not _NAME.match(value):
        raise UserError(f"{kind} {value!r}: use letters, digits, '.', '_' or '-' (max 128)")
    return value


def check_version(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{6,64}", value):
        raise UserError(f"--version {value!r}: expected a (prefix of a) manifest sha256 in hex")
    return value


def target_root(base: S3Url, recipe: str, target: str) -> S3Url:
    return base.child(recipe, target)


def version_root(base: S3Url, recipe: str, target: str, version: str) -> S3Url:
    return base.child(recipe, target, version)


def manifest_key(base: S3Url, recipe: str, target: str, version: str) -> str:
    return version_root(base, recipe, target, version).key(MANIFEST)


def channel_key(base: S3Url, recipe: str, target: str, channel: str) -> str:
    return target_root(base, recipe, target).key(CHANNELS, f"{channel}.json")


@dataclass(frozen=True)
class VersionRef:
    recipe: str
    target: str
    version: str


def parse_manifest_key(key: str) -> VersionRef | None:
    match = _MANIFEST_KEY.search(key)
    return VersionRef(*match.groups()) if match else None


def parse_channel_key(key: str) -> tuple[str, str, str] | None:
    match = _CHANNEL_KEY.search(key)
    return match.groups() if match else None  # type: ignore[return-value]
