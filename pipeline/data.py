"""The recipe's JSONL splits: one `{"text": str, "label": str}` per line.

Three optional string fields only label rows for reports: `subset` (e.g. an eval file that
holds template, out-of-template and hard-negative rows), `lang` and `category`.

A row's text is kept as the router's model will read it: normalised by the router's own
pass (`router/normalize.py`). Training, calibration, the threshold and every figure in
the report then describe the text the deployed model sees, not the file's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.recipe import Recipe
from router.errors import UserError
from router.normalize import normalize
from router.schema_io import jsonl_objects

SPLITS = ("train", "eval", "calib")


class EmptySplit(UserError):
    """A split file with no examples (a UserError that callers may re-word)."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    subset: str = ""
    lang: str = ""
    category: str = ""


def read_jsonl(path: Path, labels: list[str]) -> list[Example]:
    """Parse a split; any bad line is a UserError naming the file, line and field."""
    examples = []
    for n, row in jsonl_objects(path):
        where = f"{path}:{n}"
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: text: missing or not a non-empty string")
        text = normalize(text)
        if not text.strip():
            raise UserError(f"{where}: text: nothing left once normalised (invisible characters)")
        if label not in labels:
            raise UserError(f"{where}: label: {label!r} is not one of {labels}")
        tags = {key: row.get(key) or "" for key in ("subset", "lang", "category")}
        for key, value in tags.items():
            if not isinstance(value, str):
                raise UserError(f"{where}: {key}: not a string")
        examples.append(Example(text, label, **tags))
    if not examples:
        raise EmptySplit(f"{path}: split is empty")
    return examples


def load_split(recipe: Recipe, split: str) -> list[Example]:
    """One split; a missing or empty file is reported against the recipe's field."""
    path = recipe.data_path(split)
    if not path.is_file():
        raise UserError(f"{recipe.path}: data.{split}: file not found: {path}")
    try:
        return read_jsonl(path, recipe.labels)
    except EmptySplit:
        raise UserError(f"{recipe.path}: data.{split}: split is empty: {path}") from None


def check_splits(recipe: Recipe) -> None:
    """Fail before any stage runs if a split is missing, empty or mislabelled."""
    for split in SPLITS:
        load_split(recipe, split)
