"""Sessions and background processes for the service's callers, by id, confined like tasks.

A session lives in the service process between calls (a shell, or an interpreter kernel), so a
caller names it by the id `open` gave; it ends when closed, when its interpreter dies, or with its
task. Processes are the manager's own (by pid), reached only through a task the caller owns.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from runtime.errors import InvalidRequest, SessionClosed
from runtime.sandbox.execution import OutputChunk
from runtime.sandbox.kernel_session import CellResult, KernelSession
from runtime.sandbox.processes import ProcessInfo
from runtime.sandbox.sessions import ShellResult, ShellSession
from runtime.server.broker import TaskBroker
from runtime.server.tokens import Scope


@dataclass(frozen=True)
class OpenSession:
    session_id: str
    task_id: str
    kind: str
    session: ShellSession | KernelSession


class StatefulBroker:
    """Sessions by id and processes by pid, behind the task broker's ownership check."""

    def __init__(self, broker: TaskBroker) -> None:
        self.broker = broker
        self._sessions: dict[str, OpenSession] = {}

    # -- sessions --------------------------------------------------------------------------------

    async def open(self, scope: Scope, task_id: str, kind: str) -> OpenSession:
        self.broker.info(scope, task_id)
        session = await self.broker.manager.open_session(task_id, kind)
        opened = OpenSession(f"{kind}-{uuid.uuid4().hex[:12]}", task_id, kind, session)
        self._sessions[opened.session_id] = opened
        session.on_closed(lambda: self._sessions.pop(opened.session_id, None))
        return opened

    def sessions(self, scope: Scope, task_id: str) -> list[OpenSession]:
        self.broker.info(scope, task_id)
        return [s for s in self._sessions.values() if s.task_id == task_id]

    def get(self, scope: Scope, task_id: str, session_id: str) -> OpenSession:
        self.broker.info(scope, task_id)
        opened = self._sessions.get(session_id)
        if opened is None or opened.task_id != task_id:
            raise SessionClosed(f"task {task_id!r} has no open session {session_id!r}")
        return opened

    async def run(self, scope: Scope, task_id: str, session_id: str, code: str,
                  timeout: float | None = None) -> ShellResult | CellResult:
        session = self.get(scope, task_id, session_id).session
        return await session.run(code, timeout=self.broker.timeout(scope, timeout))

    async def interrupt(self, scope: Scope, task_id: str, session_id: str) -> None:
        await self.get(scope, task_id, session_id).session.interrupt()

    async def close(self, scope: Scope, task_id: str, session_id: str) -> None:
        opened = self.get(scope, task_id, session_id)
        self._sessions.pop(session_id, None)
        await opened.session.close()

    # -- background processes ----------------------------------------------------------------------

    async def start_process(self, scope: Scope, task_id: str, command: str, name: str | None = None,
                            env: Mapping[str, str] | None = None, workdir: str | None = None) -> ProcessInfo:
        self.broker.info(scope, task_id)
        return await self.broker.manager.start_process(task_id, command, name, env=env, workdir=workdir)

    def processes(self, scope: Scope, task_id: str) -> list[ProcessInfo]:
        self.broker.info(scope, task_id)
        return self.broker.manager.list_processes(task_id)

    def output(self, scope: Scope, task_id: str, pid: int, follow: bool = False) -> AsyncIterator[OutputChunk]:
        self.broker.info(scope, task_id)
        self.process(scope, task_id, pid)  # an unknown pid is refused before the stream starts
        return self.broker.manager.process_output(task_id, pid, follow)

    def process(self, scope: Scope, task_id: str, pid: int) -> ProcessInfo:
        for info in self.processes(scope, task_id):
            if info.pid == pid:
                return info
        raise InvalidRequest(f"task {task_id!r} has no background process {pid}")

    async def send_stdin(self, scope: Scope, task_id: str, pid: int, data: bytes) -> None:
        self.process(scope, task_id, pid)
        await self.broker.manager.send_stdin(task_id, pid, data)

    async def kill(self, scope: Scope, task_id: str, pid: int, signal: str = "TERM") -> None:
        self.process(scope, task_id, pid)
        await self.broker.manager.kill_process(task_id, pid, signal)

    async def wait(self, scope: Scope, task_id: str, pid: int, timeout: float | None) -> ProcessInfo:
        self.process(scope, task_id, pid)
        return await self.broker.manager.wait_process(task_id, pid, self.broker.timeout(scope, timeout))
