"""Deterministic tarballs and safe extraction."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from pipeline.packaging.tarball import safe_extract, write_tar_gz
from router.errors import UserError


def make_tree(root: Path) -> Path:
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "b" / "deep" / "c.bin").write_bytes(os.urandom(0) + bytes(range(256)) * 40)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o775)
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_tree_gives_the_same_bytes_regardless_of_mtimes_and_order(tmp_path):
    first = make_tree(tmp_path / "one")
    a = write_tar_gz(first, tmp_path / "a.tar.gz", prefix="bundle")
    time.sleep(1.1)
    second = tmp_path / "two"
    second.mkdir()
    for rel in ("run.sh", "b/deep/c.bin", "a.txt"):  # other creation order, later mtimes
        (second / rel).parent.mkdir(parents=True, exist_ok=True)
        (second / rel).write_bytes((first / rel).read_bytes())
    (second / "run.sh").chmod(0o700)
    b = write_tar_gz(second, tmp_path / "b.tar.gz", prefix="bundle")
    assert sha(a) == sha(b)
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert members[0].name == "bundle"
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert modes["bundle/run.sh"] == 0o755 and modes["bundle/a.txt"] == 0o644
    assert a.read_bytes()[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"


def test_changed_content_changes_the_hash(tmp_path):
    tree = make_tree(tmp_path / "t")
    before = sha(write_tar_gz(tree, tmp_path / "1.tar.gz"))
    (tree / "a.txt").write_text("alpha!\n")
    assert sha(write_tar_gz(tree, tmp_path / "2.tar.gz")) != before


def test_safe_extract_round_trips_a_packed_tree(tmp_path):
    tree = make_tree(tmp_path / "t")
    archive = write_tar_gz(tree, tmp_path / "t.tar.gz", prefix="t")
    names = safe_extract(archive, tmp_path / "out")
    assert "t/b/deep/c.bin" in names
    assert (tmp_path / "out/t/b/deep/c.bin").read_bytes() == (tree / "b/deep/c.bin").read_bytes()


def evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if member.isreg():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tarfile.TarInfo("/etc/evil"), "absolute path refused"),
        (tarfile.TarInfo("../evil"), "'..' in path refused"),
        (tarfile.TarInfo("a/../../evil"), "'..' in path refused"),
        (link("up", "../../etc/passwd"), "link to ../../etc/passwd escapes"),
        (link("abs", "/etc/passwd"), "link to /etc/passwd escapes"),
        (link("sub/dir/l", "../../../x"), "escapes"),
        (link("hard", "../outside", tarfile.LNKTYPE), "escapes"),
    ],
)
def test_safe_extract_refuses_members_that_escape(tmp_path, member, message):
    archive = evil_archive(tmp_path / "evil.tar.gz", member)
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(UserError, match=message):
        safe_extract(archive, dest)
    assert not (tmp_path / "dest" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not (dest / "fine.txt").exists(), "nothing is extracted from a refused archive"


def test_safe_extract_allows_links_that_stay_inside(tmp_path):
    archive = evil_archive(tmp_path / "ok.tar.gz", link("sub/l", "../fine.txt"))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/sub/l").read_text() == "ok"


def test_safe_extract_rejects_a_non_archive_in_one_line(tmp_path):
    bogus = tmp_path / "x.tar.gz"
    bogus.write_text("not a tarball")
    with pytest.raises(UserError, match=r"x\.tar\.gz: not a readable tar archive"):
        safe_extract(bogus, tmp_path / "out")


def test_symlinks_in_a_tree_are_not_packed(tmp_path):
    tree = make_tree(tmp_path / "t")
    (tree / "l").symlink_to("/etc/passwd")
    with pytest.raises(UserError, match="symlinks are not packaged"):
        write_tar_gz(tree, tmp_path / "t.tar.gz")
