"""The project files a module's behaviour can depend on: its import closure, read statically.

A stage's cache key hashes these files, so a change anywhere the stage's code reaches
re-runs it, and a change anywhere else does not. The closure comes from grimp, the
import graph that import-linter checks, so it follows every import (also those inside
functions) and cannot drift from the code the way a hand-kept list does. Imports under
`if TYPE_CHECKING:` never run and are left out. A module brings the packages above it
(importing it runs their `__init__.py`) and their data: the other files in a package
folder and in its subfolders that are not packages (e.g. `packaging/templates/`, which
stages copy into bundles).
Why, and what it costs: docs/decisions/012-stage-code-from-import-closure.md.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import grimp

PROJECT_PACKAGES = ("pipeline", "router")
SKIPPED_DIRS = {"__pycache__"}


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PROJECT_PACKAGES, cache_dir=None, exclude_type_checking_imports=True)


def closure(module: str) -> set[str]:
    """`module` and every project module that importing it runs: what it imports (directly
    or not) and the packages above each of those, with what they import in turn."""
    graph = _graph()
    found: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        if name in graph.modules:
            todo += graph.find_modules_directly_imported_by(name)
        todo += [p for p in _packages_above(name) if p in graph.modules]
    return found


def _packages_above(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def source_files(module: str) -> dict[str, Path]:
    """Every file of `module`'s closure, by its path relative to the folder above its package."""
    files: dict[str, Path] = {}
    for name in closure(module):
        origin = _origin(name)
        if origin is None:
            continue
        depth = name.count(".") + (origin.name == "__init__.py")
        root = origin.parents[depth]
        files[origin.relative_to(root).as_posix()] = origin
        if origin.name == "__init__.py":
            for data in _package_data(origin.parent):
                files[data.relative_to(root).as_posix()] = data
    return files


def _origin(module: str) -> Path | None:
    loaded = sys.modules.get(module)
    if loaded is not None:
        return Path(loaded.__file__) if getattr(loaded, "__file__", None) else None
    spec = find_spec(module)
    return Path(spec.origin) if spec is not None and spec.has_location else None


def _package_data(folder: Path) -> list[Path]:
    """Files in a package folder that are not its modules, and all of its data subfolders."""
    found = []
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix not in (".py", ".pyc"):
            found.append(entry)
        elif entry.is_dir() and entry.name not in SKIPPED_DIRS and not _is_package(entry):
            found += [p for p in entry.rglob("*") if p.is_file() and not _skipped(p, entry)]
    return found


def _is_package(folder: Path) -> bool:
    return (folder / "__init__.py").exists()


def _skipped(path: Path, top: Path) -> bool:
    return path.suffix == ".pyc" or any(p in SKIPPED_DIRS for p in path.relative_to(top).parts)
