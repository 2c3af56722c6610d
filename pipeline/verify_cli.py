"""`edgepack verify DIST`: re-hash every file of a build against its manifest.json.

Exit 0 when the bundle is exactly what the manifest lists; exit 1, listing every
missing, extra and changed file, otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.errors import UserError
from pipeline.manifest import read_manifest, verify_dist


def verify(dist: Annotated[Path, typer.Argument(help="a dist/<recipe>-<target> folder")]) -> None:
    """Check every file of DIST against its manifest (sha256 and size)."""
    if not dist.is_dir():
        raise UserError(f"{dist}: not a folder")
    problems = verify_dist(dist)
    out = Console(highlight=False, soft_wrap=True)
    if problems:
        for line in problems:
            out.print(line)
        raise UserError(f"{dist}: FAILED, {len(problems)} problem(s) listed above", code=1)
    count = len(read_manifest(dist)["files"])
    out.print(f"[green]OK[/] {dist}: {count} files match manifest.json")


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)
