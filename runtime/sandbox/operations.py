"""Exec and files on a live task: the half of `ContainerManager` that runs things inside a sandbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runtime.backends.base import Backend
from runtime.config import RuntimeConfig
from runtime.registry import Registry
from runtime.sandbox.events import ExecEvent, Observers
from runtime.sandbox.execution import ExecRequest, ExecResult, ExecStream
from runtime.sandbox.files import FileEntry, prepare_files
from runtime.sandbox.paths import relative_parts
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.tasks import ContainerInfo, TaskTable

if TYPE_CHECKING:
    from runtime.sandbox.runcode import CodeRunner, RunResult

_COMMAND_CHARS = 300
_STDERR_TAIL = 4096


class TaskOperations:
    """Needs what `ContainerManager` sets up: its config, backend, observers, pool and task table."""

    config: RuntimeConfig
    registry: Registry
    backend: Backend
    observers: Observers
    pool: WarmPool | None
    _tasks: TaskTable
    _runner: CodeRunner | None

    def task_info(self, task_id: str) -> ContainerInfo:
        """The task's container, or `TaskNotFound`."""
        return self._tasks.get(task_id)

    def exec_stream(
        self,
        task_id: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecStream:
        """`async for chunk in manager.exec_stream(...)`; the stream's `result` is set at the end."""
        info = self._tasks.get(task_id)
        request = ExecRequest.shell(
            self.config, command, timeout=timeout, env=env, workdir=workdir, stdin=stdin,
            max_output_bytes=max_output_bytes,
        )
        started_at = time.time()

        def done(result: ExecResult) -> None:
            self.observers.exec(ExecEvent(
                task_id=info.task_id, project_id=info.project_id, language=info.language,
                command=command[:_COMMAND_CHARS], started_at=started_at, duration=result.duration,
                exit_code=result.exit_code, timed_out=result.timed_out, oom_killed=result.oom_killed,
                stdout_bytes=result.stdout_bytes, stderr_bytes=result.stderr_bytes, truncated=result.truncated,
                stderr_tail=result.stderr[-_STDERR_TAIL:],
            ))
            if self.pool is not None:
                # The task has started: refill its key now, after (not during) its command (a no-op
                # once the key is back at its target).
                self.pool.refill(info.project_id, info.language)

        return ExecStream(self.backend.exec, info.container_id, request, done)

    async def exec_command(
        self,
        task_id: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run `command` through the shell in /workspace as the sandbox user; output capped, tree killed on timeout."""
        stream = self.exec_stream(
            task_id, command, timeout=timeout, env=env, workdir=workdir, stdin=stdin,
            max_output_bytes=max_output_bytes,
        )
        return await stream.collect()

    async def run_code(
        self,
        task_id: str,
        code: str,
        filename: str | None = None,
        *,
        strict: bool = False,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Write `code` into /workspace, validate it, run it with the language's command (see runcode.py)."""
        from runtime.sandbox.runcode import CodeRunner

        if self._runner is None:
            self._runner = CodeRunner(self.registry)
        return await self._runner.run(self, task_id, code, filename, strict=strict, timeout=timeout, env=env,
                                      stdin=stdin)

    async def write_files(self, task_id: str, files: Mapping[str, str | bytes]) -> list[str]:
        """Write files under /workspace (parents created), owned by the sandbox user. Returns their paths."""
        info = self._tasks.get(task_id)
        contents = prepare_files(files, max_bytes=self.config.limits.max_archive_bytes)
        await self.backend.write_files(info.container_id, self.config.security.workspace, contents)
        return list(contents)

    async def list_files(self, task_id: str, path: str = ".") -> list[FileEntry]:
        """A directory under /workspace: each entry's name, type (file, dir, link, other), size and mtime."""
        info = self._tasks.get(task_id)
        rel = "/".join(relative_parts(path, allow_root=True))
        return await self.backend.list_files(info.container_id, self.config.security.workspace, rel)

    async def read_file(self, task_id: str, path: str) -> bytes:
        """The bytes of one regular file under /workspace."""
        info = self._tasks.get(task_id)
        rel = "/".join(relative_parts(path))
        return await self.backend.read_file(
            info.container_id, self.config.security.workspace, rel, self.config.limits.max_archive_bytes
        )
