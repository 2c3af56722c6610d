"""`edgepack publish / fetch / list / keygen / public-key`: argument parsing only; the work
is in this package.

boto3 itself is imported inside the functions that open a client or a transfer, so
`edgepack --help` does not load it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.publish.client import check_access, make_client, s3_errors
from pipeline.publish.download import fetch_bundle
from pipeline.publish.listing import human_size, list_versions, versions_table
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import parse_s3_url
from pipeline.publish.signing import KMS_PREFIX, export_public_key, generate_key, signer, verifier
from pipeline.publish.upload import publish_bundle, transfer_config
from pipeline.target import load_target
from router.errors import UserError

ENDPOINT_HELP = "S3 endpoint URL (default: boto3's chain, e.g. AWS_ENDPOINT_URL)"
QUIET_HELP = "no progress bars, summary lines only (CI)"
SIGN_HELP = "sign manifest.json: an Ed25519 private key PEM, or kms:KEY-ID|ARN|alias/NAME"
PUBLIC_KEY_HELP = (
    "refuse a bundle whose manifest signature does not verify: a public key PEM "
    "(Ed25519, or EC exported from KMS), or kms:KEY-ID|ARN|alias/NAME"
)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)b?(?:/s)?$", re.IGNORECASE)


def parse_rate(text: str | None) -> int | None:
    """'20MB' → 20_000_000 bytes per second (decimal units, like the progress bar)."""
    if text is None:
        return None
    match = _SIZE.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--max-bandwidth {text!r}: expected e.g. 500KB, 20MB or 1GB (per second)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def _target_name(name: str) -> str:
    """Resolve a target alias (jetson → jetson-orin); unknown names pass through unchanged."""
    try:
        return load_target(name).name
    except UserError:
        return name


def publish(
    dist: Annotated[Path, typer.Argument(help="a finished dist/<recipe>-<target> folder")],
    to: Annotated[str, typer.Option("--to", help="s3://bucket/prefix")],
    channel: Annotated[str | None, typer.Option(help="move this channel to the version")] = None,
    endpoint_url: Annotated[str | None, typer.Option(help=ENDPOINT_HELP)] = None,
    max_bandwidth: Annotated[str | None, typer.Option(help="upload rate cap, e.g. 20MB")] = None,
    quiet: Annotated[bool, typer.Option(help=QUIET_HELP)] = False,
    sign: Annotated[str | None, typer.Option(help=SIGN_HELP, envvar="EDGEPACK_SIGNING_KEY")] = None,
) -> None:
    """Upload a bundle to S3: files first, manifest last (the commit); idempotent."""
    url = parse_s3_url(to)
    out = Console(highlight=False, soft_wrap=True, markup=False)
    progress = TransferProgress(Console(stderr=True), quiet=quiet)
    result = publish_bundle(
        make_client(endpoint_url), dist, url, channel=channel, progress=progress,
        config=transfer_config(parse_rate(max_bandwidth)), signer=signer(sign),
    )  # fmt: skip
    name = f"{result.recipe}/{result.target} {result.version[:12]}"
    if result.already_published:
        out.print(f"already published {name}: nothing uploaded  ({result.root}/)")
    else:
        how = " (committed concurrently by another publish)" if result.committed_by_other else ""
        out.print(
            f"published {name}: {len(result.uploaded)} files uploaded "
            f"({human_size(result.uploaded_bytes)}), {len(result.skipped)} already there{how}"
            f"  ({result.root}/)"
        )
    if result.signed_by:
        out.print(f"signed manifest.json with {result.signed_by}")
    if result.aborted_stale:
        out.print(f"aborted {result.aborted_stale} stale multipart uploads of killed publishes")
    if result.channel:
        was = result.previous[:12] if result.previous else "unset"
        out.print(f"channel {result.channel} → {result.version[:12]} (was {was})")


def fetch(
    url: Annotated[str, typer.Argument(help="s3://bucket/prefix/<recipe>")],
    dest: Annotated[Path, typer.Argument(help="folder to create with the verified bundle")],
    target: Annotated[str, typer.Option(help="target name or alias")],
    channel: Annotated[
        str | None, typer.Option(help="fetch the version this channel names")
    ] = None,
    version: Annotated[str | None, typer.Option(help="manifest sha256 (or a prefix of it)")] = None,
    force: Annotated[bool, typer.Option(help="replace DEST if it holds another bundle")] = False,
    endpoint_url: Annotated[str | None, typer.Option(help=ENDPOINT_HELP)] = None,
    quiet: Annotated[bool, typer.Option(help=QUIET_HELP)] = False,
    public_key: Annotated[
        str | None, typer.Option(help=PUBLIC_KEY_HELP, envvar="EDGEPACK_PUBLIC_KEY")
    ] = None,
) -> None:
    """Download a published version (--channel, --version, or else the newest), verify
    its signature (with a public key) and every sha256, then rename it into DEST."""
    parsed = parse_s3_url(url)
    progress = TransferProgress(Console(stderr=True), quiet=quiet)
    result = fetch_bundle(
        make_client(endpoint_url), parsed, dest, target=_target_name(target), channel=channel,
        version=version, force=force, progress=progress, verifier=verifier(public_key),
    )  # fmt: skip
    state = "already up to date" if result.already_present else "fetched and verified"
    signed = f", signature OK ({result.signed_by})" if result.signed_by else ""
    Console(highlight=False, soft_wrap=True, markup=False).print(
        f"{state} {result.version[:12]} ({result.chosen_by}): {result.files} files "
        f"({human_size(result.bytes)}) in {dest}{signed}"
    )


def list_published(
    url: Annotated[str, typer.Argument(help="s3://bucket/prefix[/<recipe>]")],
    endpoint_url: Annotated[str | None, typer.Option(help=ENDPOINT_HELP)] = None,
) -> None:
    """Show published versions with their channels, sizes and dates."""
    parsed = parse_s3_url(url)
    client = make_client(endpoint_url)
    check_access(client, parsed)
    with s3_errors(parsed):
        versions = list_versions(client, parsed)
    out = Console()
    if not out.is_terminal:  # logs and pipes: no 80-column squeeze of key and date columns
        out = Console(width=200)
    if not versions:
        out.print(f"no published versions under {parsed}")
        return
    out.print(versions_table(parsed, versions))


def keygen(
    private: Annotated[Path, typer.Argument(help="where the private key PEM goes (mode 0600)")],
    public: Annotated[Path, typer.Argument(help="where the public key PEM goes")],
) -> None:
    """Create an Ed25519 key pair for `publish --sign` and `fetch/verify --public-key`."""
    fingerprint = generate_key(private, public)
    Console(highlight=False, soft_wrap=True).print(
        f"wrote {private} (keep it secret) and {public} ({fingerprint})"
    )


def public_key(
    key: Annotated[str, typer.Argument(help="kms:KEY-ID|ARN|alias/NAME")],
    out: Annotated[Path, typer.Argument(help="PEM file to write")],
) -> None:
    """Export a KMS signing key's public key as PEM, for devices that verify offline."""
    if not key.startswith(KMS_PREFIX):
        raise UserError(f"public-key {key!r}: expected kms:KEY-ID, kms:ARN or kms:alias/NAME")
    out.write_bytes(export_public_key(key.removeprefix(KMS_PREFIX)))
    Console(highlight=False, soft_wrap=True).print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(fetch)
    app.command("list")(list_published)
    app.command()(keygen)
    app.command("public-key")(public_key)
