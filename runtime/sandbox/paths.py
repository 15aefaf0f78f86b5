"""Paths under /workspace: validated, never repaired. Anything doubtful raises `InvalidPath`."""

from __future__ import annotations

from posixpath import join

from runtime.errors import InvalidPath

MAX_PATH = 4096
MAX_COMPONENT = 255


def relative_parts(path: object, *, allow_root: bool = False) -> tuple[str, ...]:
    """The components of a safe relative path: no '..', not absolute, no NUL/newline."""
    if not isinstance(path, str):
        raise InvalidPath(f"path must be a string, got {type(path).__name__}")
    if any(c in path for c in "\0\n\r"):
        raise InvalidPath(f"path {path!r} contains NUL or a line break")
    if path.startswith("/"):
        raise InvalidPath(f"path {path!r} is absolute; give it relative to the workspace")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise InvalidPath(f"path is longer than {MAX_PATH} bytes")
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidPath(f"path {path!r} climbs out with '..'")
    if any(len(p.encode("utf-8", "surrogatepass")) > MAX_COMPONENT for p in parts):
        raise InvalidPath(f"path {path!r} has a component longer than {MAX_COMPONENT} bytes")
    if not parts and not allow_root:
        raise InvalidPath(f"path {path!r} names the workspace itself, not a file")
    return parts


def under_workspace(workspace: str, path: str, *, allow_root: bool = True) -> str:
    """Absolute path for `path` (relative, or absolute below `workspace`)."""
    if isinstance(path, str) and (path == workspace or path.startswith(workspace + "/")):
        path = path[len(workspace):].lstrip("/")
    elif isinstance(path, str) and path.startswith("/"):
        raise InvalidPath(f"{path!r} is outside {workspace}")
    parts = relative_parts(path, allow_root=allow_root)
    return join(workspace, *parts) if parts else workspace
