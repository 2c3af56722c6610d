"""Load YAML files into pydantic models with one-line, field-named errors.

Recipes, targets and router configs all go through here so that every bad input
reads the same way: `path: field.path: what is wrong`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from router.errors import UserError

M = TypeVar("M", bound=BaseModel)


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    """First problem of a pydantic error as `path: a.b.c: message` (one line)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    more = len(err.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {loc}: {msg}{suffix}"


def read_yaml(path: Path) -> dict:
    """Parse a YAML mapping, turning every failure into a one-line UserError."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: {where}malformed YAML: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def load_model(model: type[M], path: Path, data: dict | None = None, **context) -> M:
    """Validate `data` (or the YAML at `path`) as `model`; errors name the file and field."""
    raw = read_yaml(path) if data is None else data
    try:
        return model.model_validate(raw, context={"path": path, **context})
    except ValidationError as err:
        raise UserError(format_validation_error(path, err)) from None


def jsonl_objects(
    path: Path, where: Callable[[int], str] | None = None
) -> Iterator[tuple[int, dict]]:
    """Each non-blank line of a JSONL file as an object, with its line number. A missing
    file, or a line that is not JSON or not an object, is a one-line UserError naming it
    (`path:N`, or `where(N)`: name the line the same way in the caller's own errors)."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            at = where(n) if where else f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{at}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise UserError(f"{at}: expected a JSON object")
            yield n, obj
