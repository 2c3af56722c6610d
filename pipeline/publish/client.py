"""The boto3 S3 client, and the translation of its failures into one-line user errors.

Credentials and endpoint come from boto3's standard chain (AWS_PROFILE, AWS_ACCESS_KEY_ID…,
AWS_ENDPOINT_URL, ~/.aws/config); `--endpoint-url` overrides the endpoint. Every S3 call
of this package runs inside `s3_errors()`, so a wrong key, a missing bucket or an
unreachable endpoint reads as one sentence naming the URL, never as a botocore traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.publish.s3url import S3Url
from router.errors import UserError

_AUTH_CODES = {
    "InvalidAccessKeyId": "the access key is not known to the server",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
    "AccessDenied": "access denied",
    "403": "access denied (wrong credentials or no permission)",
}
_MISSING_BUCKET = {"NoSuchBucket"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def make_client(endpoint_url: str | None = None) -> Any:
    """An S3 client from the standard credential chain; retries in boto3's standard mode."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    try:
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint_url or None, config=config)
    except Exception as exc:  # ProfileNotFound, bad endpoint URL, bad config file
        raise UserError(f"S3 client: {_one_line(exc)}") from None


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "") or None
    return None


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND


def is_precondition_failed(exc: BaseException) -> bool:
    return error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def explain(exc: BaseException, url: S3Url | str) -> UserError | None:
    """The user-facing sentence for a boto3/botocore failure, or None if it is not one."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    bucket = f"s3://{url.bucket}" if isinstance(url, S3Url) else str(url)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return UserError(
            f"{bucket}: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, ProfileNotFound):
        return UserError(f"{bucket}: {_one_line(exc)}")
    if isinstance(exc, EndpointConnectionError | BotoConnectionError):
        return UserError(f"{bucket}: cannot reach the S3 endpoint: {_one_line(exc)}", code=3)
    if isinstance(exc, ClientError):
        code = error_code(exc) or "?"
        if code in _AUTH_CODES:
            return UserError(f"{bucket}: {_AUTH_CODES[code]} ({code}); check your credentials")
        if code in _MISSING_BUCKET:
            return UserError(f"{bucket}: bucket does not exist")
        return UserError(f"{url}: S3 error {code}: {_one_line(exc)}", code=1)
    return None


@contextmanager
def s3_errors(url: S3Url | str) -> Iterator[None]:
    """Re-raise botocore failures inside the block as one-line UserErrors naming `url`."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        user_error = explain(exc, url)
        if user_error is None:
            raise
        raise user_error from None


def check_access(client: Any, url: S3Url) -> None:
    """Fail early and clearly on wrong credentials, a missing bucket or a dead endpoint.

    ListObjectsV2 (not HeadBucket) because its error body carries the precise code
    (InvalidAccessKeyId, NoSuchBucket, …) where HEAD only has a bare 403/404.
    """
    with s3_errors(url):
        client.list_objects_v2(Bucket=url.bucket, Prefix=url.key(), MaxKeys=1)


def head(client: Any, bucket: str, key: str) -> dict | None:
    """HeadObject, or None when the object does not exist."""
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def list_keys(client: Any, bucket: str, prefix: str) -> dict[str, dict]:
    """Every object under `prefix` (key → listing entry with Size, LastModified, ETag)."""
    found: dict[str, dict] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = entry
    return found
