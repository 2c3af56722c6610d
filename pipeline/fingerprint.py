"""What a file's content and an installed package's version are, as strings to record.

The cache key, the manifest and publish all hash files and name package versions the
same way; this leaf holds that one way, with no imports beyond the standard library.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"
