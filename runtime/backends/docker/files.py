"""Files in and out of a Docker container's /workspace as uncompressed tar archives.

The archive never holds links, absolute names or '..': it is built only from paths the
core validated (`runtime.sandbox.files.prepare_files`), so the engine extracts exactly the
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
from runtime.sandbox.files import parent_directories


def build_archive(files: Mapping[str, bytes], *, uid: int, gid: int) -> bytes:
    """Tar bytes holding `files` (validated relative paths) and their parent directories, owned by uid:gid."""
    now = time.time()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in parent_directories([tuple(p.split("/")) for p in files]):
            info = _info("/".join(d), uid, gid, now)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in files.items():
            info = _info(path, uid, gid, now)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


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
