"""`edgepack verify DIST`: re-hash every file of a build against its manifest.json, and
with a public key, check the manifest's signature first.

Exit 0 when the bundle is exactly what the (signed) manifest lists; exit 1, listing
every missing, extra and changed file (or the one signature problem), otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.manifest import MANIFEST, read_manifest, verify_dist
from pipeline.publish.signing import verifier
from pipeline.signature import SIGNATURE
from router.errors import UserError

PUBLIC_KEY_HELP = (
    "also check manifest.json.sig: a public key PEM (Ed25519, or EC exported from KMS), "
    "or kms:KEY-ID|ARN|alias/NAME"
)


def verify(
    dist: Annotated[Path, typer.Argument(help="a dist/<recipe>-<target> folder")],
    public_key: Annotated[
        str | None, typer.Option(help=PUBLIC_KEY_HELP, envvar="EDGEPACK_PUBLIC_KEY")
    ] = None,
) -> None:
    """Check every file of DIST against its manifest (sha256 and size), and its signature."""
    if not dist.is_dir():
        raise UserError(f"{dist}: not a folder")
    check = verifier(public_key)
    record = None
    if check is not None:
        read_manifest(dist)  # a missing or broken manifest is named before its signature
        sig = dist / SIGNATURE
        record = check.check(
            (dist / MANIFEST).read_bytes(), sig.read_bytes() if sig.is_file() else None, str(dist)
        )
    problems = verify_dist(dist)
    out = Console(highlight=False, soft_wrap=True)
    if problems:
        for line in problems:
            out.print(line)
        raise UserError(f"{dist}: FAILED, {len(problems)} problem(s) listed above", code=1)
    count = len(read_manifest(dist)["files"])
    signed = f", signed by {record['key']}" if record else ""
    out.print(f"[green]OK[/] {dist}: {count} files match manifest.json{signed}")


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)
