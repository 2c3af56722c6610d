"""Channels (`stable`, `canary`, …): small JSON pointers to a committed version.

A pointer is written only after its version's manifest exists, so following a channel
never lands on a half-published version; moving it leaves every old version in place.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pipeline.publish import layout
from pipeline.publish.client import is_not_found
from pipeline.publish.s3url import S3Url
from router.errors import UserError


def read_channel(client: Any, url: S3Url, recipe: str, target: str, channel: str) -> dict | None:
    """The pointer object of `channel`, or None when the channel was never set."""
    from botocore.exceptions import ClientError

    key = layout.channel_key(url, recipe, target, channel)
    try:
        body = client.get_object(Bucket=url.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    try:
        pointer = json.loads(body)
        layout.check_version(pointer["version"])
    except (ValueError, KeyError, TypeError, UserError):
        raise UserError(f"{url.uri(key)}: not a valid channel pointer", code=1) from None
    return pointer


def write_channel(
    client: Any, url: S3Url, recipe: str, target: str, channel: str, version: str
) -> str | None:
    """Point `channel` at `version`; returns the version it pointed at before (or None)."""
    old = read_channel(client, url, recipe, target, channel)
    previous = old["version"] if old else None
    pointer = {
        "channel": channel,
        "recipe": recipe,
        "target": target,
        "version": version,
        "previous": previous,
        "updated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    client.put_object(
        Bucket=url.bucket,
        Key=layout.channel_key(url, recipe, target, channel),
        Body=(json.dumps(pointer, indent=2) + "\n").encode(),
        ContentType="application/json",
    )
    return previous
