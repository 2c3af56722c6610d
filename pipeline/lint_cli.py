"""`edgepack lint MODEL --target T`: the quantize stage's TensorRT lint, on its own.

Prints one line per violation (`node: problem`) and exits 1, or says the model is clean
and exits 0; a missing model or unknown target is a one-line user error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.quant.lint import lint_file
from pipeline.target import load_target


def lint(
    model: Annotated[Path, typer.Argument(help="an ONNX model (e.g. dist/…/onnx/model.qdq.onnx)")],
    target: Annotated[str, typer.Option(help="target name, alias or YAML")],
) -> None:
    """Check a Q/DQ model against TARGET's TensorRT: opset, symmetric INT8, axes, ops."""
    loaded = load_target(target)
    violations = lint_file(model, loaded)
    for violation in violations:
        typer.echo(f"{model}: {violation}")
    if violations:
        raise typer.Exit(1)
    typer.echo(f"{model}: clean for {loaded.name}")


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)
