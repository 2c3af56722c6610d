"""Deterministic tarballs and safe extraction.

Writing: entries sorted by path, mtime 0, uid/gid 0, no owner names, normalised modes,
gzip header without name or time, so the same tree always gives the same sha256 (the
manifest and S3 content addresses rely on that).

Reading: every extraction in edgepack goes through `safe_extract`, which refuses
absolute paths, `..`, links that point outside the destination and device files
(tarfile's "data" filter, PEP 706) instead of silently fixing them.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from router.errors import UserError


def _tarinfo(path: Path, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = path.stat().st_size
        info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
    return info


def _entries(src: Path, prefix: str) -> list[tuple[Path, str]]:
    if any(p.is_symlink() for p in src.rglob("*")):
        link = next(p for p in src.rglob("*") if p.is_symlink())
        raise UserError(f"{link}: symlinks are not packaged (copy the file instead)")
    items = [(p, p.relative_to(src).as_posix()) for p in src.rglob("*")]
    if prefix:
        items = [(p, f"{prefix}/{rel}") for p, rel in items] + [(src, prefix)]
    return sorted(items, key=lambda item: item[1])


def write_tar_gz(src: Path, dest: Path, *, prefix: str = "") -> Path:
    """Pack the tree `src` into `dest` (entries under `prefix/` if given), reproducibly."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in _entries(src, prefix):
            info = _tarinfo(path, arcname)
            if info.isdir():
                tar.addfile(info)
            else:
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        dest.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw.getvalue())
    return dest


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract `archive` into `dest`; refuses any member that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _refuse_unsafe(archive, member)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise UserError(f"{archive}: unsafe member refused: {exc}") from None
    except tarfile.TarError as exc:
        raise UserError(f"{archive}: not a readable tar archive: {exc}") from None
    return [m.name for m in members]


def _refuse_unsafe(archive: Path, member: tarfile.TarInfo) -> None:
    """Explicit checks before tarfile's filter, so the message names the rule broken."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{archive}: {name}: absolute path refused")
    if ".." in Path(name).parts:
        raise UserError(f"{archive}: {name}: '..' in path refused")
    if member.issym() or member.islnk():
        target = Path(member.linkname)
        base = Path(name).parent if member.issym() else Path()
        resolved = (base / target).as_posix() if not target.is_absolute() else "/"
        depth = 0
        for part in Path(resolved).parts:
            depth += -1 if part == ".." else 0 if part == "." else 1
            if depth < 0 or part == "/":
                raise UserError(f"{archive}: {name}: link to {member.linkname} escapes")
