"""Paths under /workspace and the tar archives built from them."""

from __future__ import annotations

import io
import tarfile

import pytest

from runtime.backends.docker.files import build_archive, check_resolved, resolve_command, single_file
from runtime.errors import InvalidPath
from runtime.sandbox.files import prepare_files
from runtime.sandbox.paths import relative_parts, under_workspace


@pytest.mark.parametrize(
    ("path", "parts"), [("a.py", ("a.py",)), ("./a//b/", ("a", "b")), ("a/./b.txt", ("a", "b.txt")), ("..a", ("..a",))]
)
def test_relative_paths_are_normalised_only_trivially(path: str, parts: tuple[str, ...]) -> None:
    assert relative_parts(path) == parts


@pytest.mark.parametrize(
    "bad", ["", ".", "/etc/passwd", "../x", "a/../../x", "a/..", "a\0b", "a\nb", "a\rb", 3, "x" * 300]
)
def test_unsafe_paths_raise(bad: object) -> None:
    with pytest.raises(InvalidPath):
        relative_parts(bad)


def test_workdirs_stay_under_the_workspace() -> None:
    assert under_workspace("/workspace", "/workspace") == "/workspace"
    assert under_workspace("/workspace", "src/app") == "/workspace/src/app"
    assert under_workspace("/workspace", "/workspace/src") == "/workspace/src"
    for bad in ("/etc", "/workspace2", "/workspace/../etc", "../etc"):
        with pytest.raises(InvalidPath):
            under_workspace("/workspace", bad)


def test_archive_holds_regular_files_and_parent_dirs_owned_by_the_sandbox_user() -> None:
    files = {"src/pkg/a.py": "print('é')", "b.bin": b"\x00\xff"}
    prepared = prepare_files(files, max_bytes=1 << 20)
    assert sorted(prepared) == ["b.bin", "src/pkg/a.py"]
    data = build_archive(prepared, uid=1000, gid=1000)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"src", "src/pkg", "src/pkg/a.py", "b.bin"}
        assert all((m.uid, m.gid) == (1000, 1000) for m in members.values())
        assert members["src"].isdir() and members["src/pkg/a.py"].isfile()
        assert not any(m.issym() or m.islnk() or m.name.startswith("/") for m in members.values())
        handle = tar.extractfile("src/pkg/a.py")
        assert handle is not None and handle.read() == "print('é')".encode()


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "no files"),
        ({"a": "1", "./a": "2"}, "twice"),
        ({"a": "1", "a/b": "2"}, "file and as a directory"),
        ({"a": 3}, "str or bytes"),
        ({"big": b"x" * 5000}, "limit"),
        ({"../x": ""}, "climbs"),
    ],
)
def test_bad_archives_are_refused(files: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidPath, match=match):
        prepare_files(files, max_bytes=4096)  # type: ignore[arg-type]


def _tar(kind: bytes, name: str = "x", data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def test_single_file_reads_regular_files_only() -> None:
    assert single_file(_tar(tarfile.REGTYPE, data=b"hi"), "x") == b"hi"
    with pytest.raises(InvalidPath, match="link"):
        single_file(_tar(tarfile.SYMTYPE), "x")
    with pytest.raises(InvalidPath, match="directory"):
        single_file(_tar(tarfile.DIRTYPE), "x")
    with pytest.raises(InvalidPath, match="unreadable"):
        single_file(b"not a tar" * 100, "x")


def test_resolved_paths_must_stay_inside() -> None:
    assert resolve_command("/workspace", ["a", "b/c"]) == ["realpath", "-m", "--", "/workspace/a", "/workspace/b/c"]
    resolved = check_resolved("/workspace", ["a", "l"], "/workspace/a\n/workspace/real\n")
    assert resolved == ["/workspace/a", "/workspace/real"]
    for outside in ("/etc/passwd", "/workspace", "/workspace2/x", "/tmp"):
        with pytest.raises(InvalidPath, match="symlink"):
            check_resolved("/workspace", ["a"], outside + "\n")
    with pytest.raises(InvalidPath, match="resolve"):
        check_resolved("/workspace", ["a", "b"], "/workspace/a\n")
