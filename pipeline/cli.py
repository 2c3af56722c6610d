"""The `edgepack` command: a thin layer over pipeline/ and router/, the top of both.

Each area (quantize lint, verify, publish, router) registers its own commands from its
own module. Heavy packages (torch, onnxruntime, tensorrt, transformers, optimum,
matplotlib) are imported only inside the functions that use them, so `edgepack --help`
and a fully cached build never load them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline import lint_cli, verify_cli
from pipeline.cache_key import build_key
from pipeline.chat.data import check_chat_splits
from pipeline.chat.model import check_causal_lm
from pipeline.chat.recipe import ChatRecipe, is_chat, load_build_recipe
from pipeline.data import check_splits
from pipeline.manifest import read_manifest
from pipeline.model_source import resolve_model
from pipeline.progress import RichReporter
from pipeline.publish import cli as publish_cli
from pipeline.recipe import Recipe
from pipeline.runner import run_build, stages_for
from pipeline.target import Target, load_target
from router import cli as router_cli
from router.errors import UserError

app = typer.Typer(
    help="Turn a model recipe into INT8 edge/cloud packages and a sensitivity-aware router.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

DEFAULT_RECIPE = Path("recipes/sensitivity-minilm.yaml")


@app.command()
def build(
    recipe: Annotated[Path, typer.Option(help="recipe YAML")] = DEFAULT_RECIPE,
    target: Annotated[str, typer.Option(help="target name, alias or YAML")] = "cpu",
    out_dir: Annotated[
        Path, typer.Option("--out", help="where dist/<recipe>-<target> goes")
    ] = Path("dist"),
    force: Annotated[bool, typer.Option(help="re-run every stage")] = False,
    from_stage: Annotated[str | None, typer.Option("--from", help="re-run from STAGE on")] = None,
    until: Annotated[str | None, typer.Option(help="stop after STAGE")] = None,
    quiet: Annotated[bool, typer.Option(help="plain log lines for CI")] = False,
) -> None:
    """Build RECIPE for TARGET into dist/<recipe>-<target>/."""
    loaded_recipe = load_build_recipe(recipe)
    loaded_target = load_target(target)
    preflight(loaded_recipe)
    reporter = RichReporter(console, quiet=quiet)
    result = run_build(
        loaded_recipe,
        loaded_target,
        out_root=out_dir,
        force=force,
        from_stage=from_stage,
        until=until,
        reporter=reporter,
    )
    ran = ", ".join(result.ran) or "nothing (all cached)"
    out.print(f"built {_display_path(result.dist)}  (ran: {ran})", highlight=False, soft_wrap=True)


@app.command("cache-key")
def cache_key(
    recipe: Annotated[Path, typer.Option(help="recipe YAML")] = DEFAULT_RECIPE,
    target: Annotated[str, typer.Option(help="target name, alias or YAML")] = "cpu",
) -> None:
    """Print the key of RECIPE's build for TARGET: it changes exactly when a stage would
    re-run, so CI names its saved .cache/edgepack with it."""
    loaded = load_build_recipe(recipe)
    out.print(build_key(stages_for(loaded), loaded, load_target(target)), highlight=False)


def preflight(recipe: Recipe | ChatRecipe) -> None:
    """Before any stage: a hub id, a missing dir, a model of the wrong kind or a bad data
    line fails here, in one line naming the file and field."""
    if is_chat(recipe):
        check_causal_lm(recipe)
        check_chat_splits(recipe)
    else:
        resolve_model(recipe)
        check_splits(recipe)


def _display_path(path: Path) -> str:
    """Relative to the working directory when below it (what people type), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def inspect(dist: Annotated[Path, typer.Argument(help="a dist/<recipe>-<target> folder")]) -> None:
    """Show what a build holds: target, stages, metrics and files."""
    manifest = read_manifest(dist)
    out.print(
        f"[bold]{manifest['recipe']['name']}[/] for [bold]{manifest['target']}[/]"
        f"  built {manifest.get('created_utc')}  commit {manifest.get('git_commit')}"
    )
    out.print_json(json.dumps(manifest.get("metrics", {})))
    table = Table("file", "size", "sha256")
    for entry in manifest["files"]:
        table.add_row(entry["path"], f"{entry['size']:,}", entry["sha256"][:16])
    out.print(table)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="recipe, chat-recipe or target")]) -> None:
    """Print the JSON Schema of a recipe or a target profile."""
    models = {"recipe": Recipe, "chat-recipe": ChatRecipe, "target": Target}
    if kind not in models:
        raise UserError(f"schema: unknown kind {kind!r} (use recipe, chat-recipe or target)")
    out.print_json(json.dumps(models[kind].model_json_schema()))


for _area in (lint_cli, verify_cli, publish_cli, router_cli):
    _area.register(app)


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code here
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as err:
        console.print(f"[red]error:[/] {err.message}", highlight=False, soft_wrap=True)
        sys.exit(err.code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        # typer vendors its own click (typer._click): match its usage errors by shape too
        if isinstance(exc, click.ClickException) or (
            hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int)
        ):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
