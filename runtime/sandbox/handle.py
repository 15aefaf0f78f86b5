"""`Sandbox`: one task's container as a handle, from `async with manager.task(...) as sandbox:`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from runtime.sandbox.execution import ExecResult, ExecStream
from runtime.sandbox.files import FileEntry
from runtime.sandbox.tasks import ContainerInfo

if TYPE_CHECKING:
    from runtime.sandbox.manager import ContainerManager
    from runtime.sandbox.processes import ProcessInfo
    from runtime.sandbox.runcode import RunResult
    from runtime.sandbox.stateful import Session


class Sandbox:
    """The manager's methods for one task, with the task id filled in."""

    def __init__(self, manager: ContainerManager, task_id: str) -> None:
        self.manager = manager
        self.task_id = task_id

    @property
    def info(self) -> ContainerInfo:
        return self.manager.task_info(self.task_id)

    async def exec(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        return await self.manager.exec_command(
            self.task_id, command, timeout=timeout, env=env, workdir=workdir, stdin=stdin,
            max_output_bytes=max_output_bytes,
        )

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecStream:
        return self.manager.exec_stream(
            self.task_id, command, timeout=timeout, env=env, workdir=workdir, stdin=stdin,
            max_output_bytes=max_output_bytes,
        )

    async def run_code(
        self,
        code: str,
        filename: str | None = None,
        *,
        strict: bool = False,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        return await self.manager.run_code(
            self.task_id, code, filename, strict=strict, timeout=timeout, env=env, stdin=stdin
        )

    async def write_files(self, files: Mapping[str, str | bytes]) -> list[str]:
        return await self.manager.write_files(self.task_id, files)

    async def read_file(self, path: str) -> bytes:
        return await self.manager.read_file(self.task_id, path)

    async def list_files(self, path: str = ".") -> list[FileEntry]:
        return await self.manager.list_files(self.task_id, path)

    @contextlib.asynccontextmanager
    async def session(self, kind: str = "shell") -> AsyncIterator[Session]:
        """`async with sandbox.session("python") as session:` — closed on the way out."""
        session = await self.manager.open_session(self.task_id, kind)
        try:
            yield session
        finally:
            await session.close()

    async def start_process(self, command: str, name: str | None = None, env: Mapping[str, str] | None = None,
                            workdir: str | None = None) -> ProcessInfo:
        return await self.manager.start_process(self.task_id, command, name=name, env=env, workdir=workdir)
