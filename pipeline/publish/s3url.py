"""`s3://bucket/prefix` URLs: parsed once, so every other module deals in bucket + key."""

from __future__ import annotations

import re
from dataclasses import dataclass

from router.errors import UserError

# S3's bucket naming rules (lower case, digits, dots, dashes; 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str
    """Key prefix without leading or trailing slash; "" for the bucket's root."""

    def key(self, *parts: str) -> str:
        """The object key of `parts` under this prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def child(self, *parts: str) -> S3Url:
        return S3Url(self.bucket, self.key(*parts))

    def parent_and_name(self) -> tuple[S3Url, str]:
        """Split off the last prefix component (`s3://b/p/recipe` → `s3://b/p`, `recipe`)."""
        if not self.prefix:
            raise UserError(f"{self}: expected s3://bucket/[prefix/]<recipe>")
        head, _, name = self.prefix.rpartition("/")
        return S3Url(self.bucket, head), name

    def uri(self, key: str | None = None) -> str:
        """`s3://bucket/key`, for messages that must name the exact object."""
        return f"s3://{self.bucket}/{self.prefix if key is None else key}".rstrip("/")

    def __str__(self) -> str:
        return self.uri()


def parse_s3_url(text: str) -> S3Url:
    """Parse `s3://bucket[/prefix]`; a one-line UserError names what is wrong."""
    if not text.startswith("s3://"):
        raise UserError(f"{text}: not an S3 URL (expected s3://bucket/prefix)")
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise UserError(f"{text}: bucket {bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UserError(f"{text}: prefix {prefix!r} has an empty, '.' or '..' component")
    return S3Url(bucket, prefix)
