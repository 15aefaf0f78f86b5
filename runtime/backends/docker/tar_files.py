"""Files through the engine, for a container without a sandbox agent: tar archives in and out,
links resolved inside the container first, and a listing by `find`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.backends.docker import calls, files
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.exec import ExecTarget, Executor
from runtime.errors import InvalidPath
from runtime.sandbox.files import MAX_LISTED, FileEntry

_KINDS = {"f": "file", "d": "dir", "l": "link"}


async def resolved(executor: Executor, target: ExecTarget, workspace: str, paths: list[str], deadline: float
                   ) -> list[str]:
    """Where the paths really lead; `InvalidPath` if an existing symlink leads out of the workspace."""
    output = await executor.run_internal(target, files.resolve_command(workspace, paths), deadline)
    return files.check_resolved(workspace, paths, output.decode("utf-8", "surrogateescape"))


async def write(engine: Engine, executor: Executor, target: ExecTarget, workspace: str,
                contents: Mapping[str, bytes], user: str) -> None:
    uid, _, gid = user.partition(":")
    archive = files.build_archive(contents, uid=int(uid), gid=int(gid or uid))
    await resolved(executor, target, workspace, list(contents), engine.api_timeout)
    await engine.call(engine.client.api.put_archive, target.container_id, workspace, archive)


async def read(engine: Engine, executor: Executor, target: ExecTarget, workspace: str, path: str, limit: int
               ) -> bytes:
    (full,) = await resolved(executor, target, workspace, [path], engine.api_timeout)  # links inside are followed
    archive = await engine.call(calls.fetch_file, engine.client.api, target.container_id, full, path, limit)
    return files.single_file(archive, path)


async def listing(engine: Engine, executor: Executor, target: ExecTarget, workspace: str, path: str
                  ) -> list[FileEntry]:
    if path:
        (directory,) = await resolved(executor, target, workspace, [path], engine.api_timeout)
    else:
        directory = workspace
    script = ('test -d "$1" || { printf notadir; exit 1; }; '
              'exec find "$1/" -mindepth 1 -maxdepth 1 -printf "%f\\0%y\\0%s\\0%T@\\0"')
    output = await executor.run_internal(target, ["/bin/bash", "-c", script, "list", directory], engine.api_timeout)
    if output == b"notadir":
        raise InvalidPath(f"{path or '.'!r} is not a directory in the workspace")
    fields = output.split(b"\0")
    entries = []
    for i in range(0, len(fields) - 3, 4):
        name, kind, size, mtime = fields[i:i + 4]
        kind_name: Any = _KINDS.get(kind.decode(), "other")
        entries.append(FileEntry(name.decode("utf-8", "surrogateescape"), kind_name, int(size or 0), float(mtime or 0)))
    return sorted(entries, key=lambda e: e.name)[:MAX_LISTED]
