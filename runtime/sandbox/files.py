"""Files in and out of /workspace as uncompressed tar, built only from validated relative paths.

The archive never holds links, absolute names or '..': the engine extracts exactly the
regular files and directories listed, owned by the sandbox user. Symlinks already in the
workspace (a program may create them) are checked by resolving the targets inside the
container first (`resolve_command` / `check_resolved`).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from posixpath import join

from runtime.errors import InvalidPath
from runtime.sandbox.paths import relative_parts


def build_archive(
    files: Mapping[str, str | bytes], *, uid: int, gid: int, max_bytes: int
) -> tuple[bytes, list[str]]:
    """(tar bytes, the relative file paths in it). Parent directories are included, owned by uid:gid."""
    if not files:
        raise InvalidPath("no files given")
    now = time.time()
    entries: dict[tuple[str, ...], bytes] = {}
    for name, content in files.items():
        parts = relative_parts(name)
        if parts in entries:
            raise InvalidPath(f"{name!r} is given twice")
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        if not isinstance(content, bytes | bytearray):
            raise InvalidPath(f"content of {name!r} must be str or bytes, not {type(content).__name__}")
        entries[parts] = bytes(content)
    dirs = sorted({parts[:i] for parts in entries for i in range(1, len(parts))})
    clash = [d for d in dirs if d in entries]
    if clash:
        raise InvalidPath(f"{'/'.join(clash[0])!r} is given as a file and as a directory")
    total = sum(512 + len(c) + 511 for c in entries.values()) + 512 * (len(dirs) + 2)
    if total > max_bytes:
        raise InvalidPath(f"files total about {total} bytes, over the {max_bytes}-byte archive limit")

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = _info("/".join(d), uid, gid, now)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for parts, content in entries.items():
            info = _info("/".join(parts), uid, gid, now)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue(), ["/".join(p) for p in entries]


def _info(name: str, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.uname, info.gname, info.mtime = uid, gid, "sandbox", "sandbox", mtime
    return info


def single_file(archive: bytes, name: str) -> bytes:
    """The content of the one regular file in a `get_archive` answer."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            member = tar.next()
            if member is None:
                raise InvalidPath(f"{name!r}: empty archive from the engine")
            if member.issym() or member.islnk():
                raise InvalidPath(f"{name!r} is a link; read its target instead")
            if member.isdir():
                raise InvalidPath(f"{name!r} is a directory")
            if not member.isfile():
                raise InvalidPath(f"{name!r} is not a regular file")
            handle = tar.extractfile(member)
            return handle.read() if handle else b""
    except tarfile.TarError as err:
        raise InvalidPath(f"{name!r}: unreadable archive from the engine: {err}") from err


def resolve_command(workspace: str, rel_paths: list[str]) -> list[str]:
    """A command printing, one per line, where each path really leads (links resolved)."""
    return ["realpath", "-m", "--", *(join(workspace, p) for p in rel_paths)]


def check_resolved(workspace: str, rel_paths: list[str], output: str) -> list[str]:
    """The resolved absolute paths; `InvalidPath` for the first one outside the workspace."""
    resolved = output.splitlines()
    if len(resolved) != len(rel_paths):
        raise InvalidPath(f"could not resolve {rel_paths!r} inside the sandbox")
    for rel, real in zip(rel_paths, resolved, strict=True):
        if not real.startswith(workspace + "/"):
            raise InvalidPath(f"{rel!r} leads outside {workspace} through a symlink (to {real})")
    return resolved
