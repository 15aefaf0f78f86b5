"""Files going into /workspace, checked before any backend sees them.

Only validated relative paths pass (no '..', not absolute, no NUL or line breaks), each
given once, never both a file and a directory, within the transfer limit. How they travel
(a tar archive for Docker, the in-sandbox agent later) is the backend's business; that
existing symlinks do not lead out of the workspace is checked by the backend, inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from runtime.errors import InvalidPath
from runtime.sandbox.paths import relative_parts

TAR_BLOCK = 512


def transfer_size(files: Mapping[tuple[str, ...], bytes], directories: int) -> int:
    """About what the files take in transit: each padded to 512-byte blocks, plus a header each."""
    return sum(TAR_BLOCK + len(c) + TAR_BLOCK - 1 for c in files.values()) + TAR_BLOCK * (directories + 2)


def prepare_files(files: Mapping[str, str | bytes], *, max_bytes: int) -> dict[str, bytes]:
    """The files by normalised relative path, as bytes; `InvalidPath` for anything doubtful."""
    if not files:
        raise InvalidPath("no files given")
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
    dirs = parent_directories(list(entries))
    clash = [d for d in dirs if d in entries]
    if clash:
        raise InvalidPath(f"{'/'.join(clash[0])!r} is given as a file and as a directory")
    total = transfer_size(entries, len(dirs))
    if total > max_bytes:
        raise InvalidPath(f"files total about {total} bytes, over the {max_bytes}-byte archive limit")
    return {"/".join(parts): content for parts, content in entries.items()}


def parent_directories(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Every directory the paths need, parents before children."""
    return sorted({parts[:i] for parts in paths for i in range(1, len(parts))})


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory under /workspace, as `list_files` reports it."""

    name: str
    type: Literal["file", "dir", "link", "other"]
    size: int
    mtime: float  # unix seconds


MAX_LISTED = 10_000  # entries one listing returns at most
