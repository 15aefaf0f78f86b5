"""What a caller of the service may do: the manager's operations, confined to its own tasks and limits.

The HTTP API and the MCP tools both go through one `TaskBroker`, so a rule holds for both:
- a task belongs to the scope (token) that created it; another scope's task is `TaskNotFound`,
  exactly as if it did not exist;
- a project outside the scope's patterns is `AccessDenied`;
- live tasks (counting creates still under way) over `max_tasks` are `LimitExceeded`, and so is a
  timeout over `max_timeout` (no timeout given means the lesser of the default and the maximum).
Ids, paths and values are checked by the manager itself, so they are refused exactly as the library
refuses them.

Tasks may also belong to a group (an MCP connection): `destroy_group` removes what a client left
behind when its connection ends, and `reap_idle` what a sessionless client stopped using.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.errors import AccessDenied, LimitExceeded, TaskExists, TaskNotFound
from runtime.sandbox.execution import ExecResult, ExecStream
from runtime.sandbox.files import FileEntry
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.naming import validate_id
from runtime.sandbox.runcode import RunResult
from runtime.sandbox.tasks import ContainerInfo
from runtime.server.tokens import Scope


@dataclass
class _Owned:
    scope: str
    group: str | None
    last_used: float
    created: bool = False  # False while its create is under way


class TaskBroker:
    """One manager shared by every caller of a service process."""

    def __init__(self, manager: ContainerManager) -> None:
        self.manager = manager
        self._owned: dict[str, _Owned] = {}  # task id -> who has it (creates under way included)

    # -- tasks ---------------------------------------------------------------------------------

    async def create(self, scope: Scope, task_id: str, project_id: str, language: str, *,
                     network: str | None = None, group: str | None = None) -> ContainerInfo:
        validate_id("task id", task_id)
        validate_id("project id", project_id)
        if not scope.allows(project_id):
            raise AccessDenied(f"project {project_id!r} is outside this token's projects {list(scope.projects)}")
        self.manager.registry.resolve(language)  # bad input is said as such, before any limit is
        owned = self._reserve(scope, task_id, group)
        try:
            info = await self.manager.create_container(task_id, project_id, language, network=network)
        except BaseException:
            self._owned.pop(task_id, None)
            raise
        owned.created = True
        return info

    def _reserve(self, scope: Scope, task_id: str, group: str | None) -> _Owned:
        """Claim the id for the scope before any await, so concurrent creates are counted."""
        self._prune()
        if task_id in self._owned:
            raise TaskExists(f"task {task_id!r} already has a container")
        if scope.max_tasks is not None and self._count(scope) >= scope.max_tasks:
            raise LimitExceeded(f"this token may have {scope.max_tasks} live tasks at once; destroy one first")
        owned = self._owned[task_id] = _Owned(scope.name, group, time.monotonic())
        return owned

    def _count(self, scope: Scope) -> int:
        return sum(1 for owned in self._owned.values() if owned.scope == scope.name)

    def _prune(self) -> None:
        """Forget tasks the manager no longer has (their container failed, or expired and was cleaned up)."""
        live = self.manager.tasks
        for task_id in [t for t, owned in self._owned.items() if owned.created and t not in live]:
            del self._owned[task_id]

    def tasks(self, scope: Scope) -> list[ContainerInfo]:
        self._prune()
        live = self.manager.tasks
        return [live[t] for t, owned in list(self._owned.items()) if owned.scope == scope.name and t in live]

    def info(self, scope: Scope, task_id: str) -> ContainerInfo:
        owned = self._owned.get(task_id)
        if owned is None or owned.scope != scope.name:
            raise TaskNotFound(f"no task {task_id!r}")  # another scope's task is not even said to exist
        owned.last_used = time.monotonic()
        return self.manager.task_info(task_id)

    async def destroy(self, scope: Scope, task_id: str) -> None:
        self.info(scope, task_id)
        try:
            await self.manager.destroy_container(task_id)
        finally:
            self._owned.pop(task_id, None)

    async def destroy_group(self, group: str) -> int:
        """Destroy every task of the group (an MCP connection that ended); how many there were."""
        ids = [t for t, owned in self._owned.items() if owned.group == group]
        await asyncio.gather(*(self._forget(t) for t in ids))
        return len(ids)

    async def reap_idle(self, max_idle: float) -> int:
        """Destroy grouped tasks no call used for `max_idle` seconds; how many went."""
        now = time.monotonic()
        ids = [t for t, o in self._owned.items() if o.group is not None and now - o.last_used > max_idle]
        await asyncio.gather(*(self._forget(t) for t in ids))
        return len(ids)

    async def _forget(self, task_id: str) -> None:
        self._owned.pop(task_id, None)
        with contextlib.suppress(Exception):  # already gone, or the engine will be swept by cleanup
            await self.manager.destroy_container(task_id)

    async def close(self) -> None:
        """Destroy every task the service created, then stop the manager."""
        await asyncio.gather(*(self._forget(t) for t in list(self._owned)))
        await self.manager.shutdown()

    # -- commands and files -----------------------------------------------------------------------

    def timeout(self, scope: Scope, timeout: float | None) -> float | None:
        if scope.max_timeout is None:
            return timeout
        if timeout is None:
            return min(self.manager.config.limits.default_timeout, scope.max_timeout)
        if timeout > scope.max_timeout:
            raise LimitExceeded(f"timeout {timeout:g}s is over this token's maximum of {scope.max_timeout:g}s")
        return timeout

    def exec_stream(self, scope: Scope, task_id: str, command: str, *, timeout: float | None = None,
                    stdin: str | bytes | None = None, env: Mapping[str, str] | None = None,
                    workdir: str | None = None) -> ExecStream:
        self.info(scope, task_id)
        return self.manager.exec_stream(task_id, command, timeout=self.timeout(scope, timeout), stdin=stdin,
                                        env=env, workdir=workdir)

    async def exec(self, scope: Scope, task_id: str, command: str, **kwargs: object) -> ExecResult:
        return await self.exec_stream(scope, task_id, command, **kwargs).collect()  # type: ignore[arg-type]

    async def write_file(self, scope: Scope, task_id: str, path: str, data: bytes) -> str:
        self.info(scope, task_id)
        return (await self.manager.write_files(task_id, {path: data}))[0]

    async def read_file(self, scope: Scope, task_id: str, path: str) -> bytes:
        self.info(scope, task_id)
        return await self.manager.read_file(task_id, path)

    async def list_files(self, scope: Scope, task_id: str, path: str) -> list[FileEntry]:
        self.info(scope, task_id)
        return await self.manager.list_files(task_id, path)

    async def run_code(self, scope: Scope, task_id: str, code: str, filename: str | None = None, *,
                       timeout: float | None = None, strict: bool = False) -> RunResult:
        self.info(scope, task_id)
        return await self.manager.run_code(task_id, code, filename, timeout=self.timeout(scope, timeout),
                                           strict=strict)

    async def run_once(self, scope: Scope, language: str, code: str, *, project_id: str | None = None,
                       timeout: float | None = None) -> RunResult:
        """A fresh task runs the code and is destroyed. Without a project, a throwaway one whose volume goes too
        (it holds nothing after the run, so it needs no project scope)."""
        timeout = self.timeout(scope, timeout)
        unique = uuid.uuid4().hex[:12]
        task_id, throwaway = f"run-{unique}", project_id is None
        if throwaway:
            scope = Scope(scope.name, ("run-*",), scope.max_tasks, scope.max_timeout, scope.max_body_bytes)
        await self.create(scope, task_id, project_id or f"run-{unique}", language)
        try:
            return await self.manager.run_code(task_id, code, timeout=timeout)
        finally:
            await self.destroy(scope, task_id)
            if throwaway:
                await self.manager.delete_project_volume(f"run-{unique}")
