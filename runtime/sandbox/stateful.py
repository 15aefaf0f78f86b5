"""State kept inside a task between calls: shell sessions and background processes.

The part of `ContainerManager` that starts long-lived commands through the sandbox agent and
keeps hold of them (`sessions.py`, `processes.py`); all of them end with the task.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, overload

from runtime.backends.base import Backend
from runtime.config import RuntimeConfig
from runtime.errors import InvalidRequest
from runtime.registry import Registry
from runtime.sandbox.events import ExecEvent, Observers
from runtime.sandbox.execution import ExecRequest, ExecStream, OutputChunk
from runtime.sandbox.interactive import Interactive
from runtime.sandbox.kernel_session import CellResult, KernelSession, driver_for
from runtime.sandbox.processes import BackgroundProcess, ProcessInfo, signal_number
from runtime.sandbox.sessions import SHELL_ARGV, ShellResult, ShellSession
from runtime.sandbox.tasks import ContainerInfo, TaskTable
from runtime.sandbox.terminal import TERMINAL_SHELL, Terminal

START_TIMEOUT = 30.0  # a session's shell or a process must be running by then
MAX_PROCESSES = 64  # kept per task, exited ones included (the oldest exited go first)


Session = ShellSession | KernelSession


@dataclass
class _TaskState:
    sessions: set[Session] = field(default_factory=set)
    processes: dict[int, BackgroundProcess] = field(default_factory=dict)
    terminals: set[Terminal] = field(default_factory=set)


class StatefulOperations:
    """Needs what `ContainerManager` sets up: its config, registry, backend, observers and task table."""

    config: RuntimeConfig
    registry: Registry
    backend: Backend
    observers: Observers
    _tasks: TaskTable
    _state: dict[str, _TaskState]

    def _long_lived(self, info: ContainerInfo, command: str, env: Mapping[str, str] | None,
                    workdir: str | None, terminal: tuple[int, int] | None = None) -> tuple[ExecStream, Interactive]:
        interactive = Interactive()
        request = ExecRequest.shell(self.config, command, timeout=self.config.tasks.container_ttl, env=env,
                                    workdir=workdir, interactive=interactive, terminal=terminal)
        return ExecStream(self.backend.exec, info.container_id, request), interactive

    # -- sessions ----------------------------------------------------------------------------

    @overload
    async def open_session(self, task_id: str, kind: Literal["shell"] = "shell") -> ShellSession: ...
    @overload
    async def open_session(
        self, task_id: str, kind: Literal["python", "node", "typescript", "ruby", "java"]
    ) -> KernelSession: ...
    @overload
    async def open_session(self, task_id: str, kind: str) -> Session: ...

    async def open_session(self, task_id: str, kind: str = "shell") -> Session:
        """A session of `kind` in the task's sandbox (the kinds its language declares in languages.yaml):
        "shell" (a `ShellSession`); "python" (an IPython kernel), "node", "typescript", "ruby", "java"
        (a `KernelSession`)."""
        info = self._tasks.get(task_id)
        kinds = self.registry.resolve(info.language).sessions
        if kind not in kinds:
            raise InvalidRequest(f"{info.language} has no {kind!r} session; it has: {', '.join(kinds)}")
        driver = driver_for(kind) if kind != "shell" else None
        stream, interactive = self._long_lived(info, driver.command if driver else SHELL_ARGV, None, None)

        def record(command: str, result: ShellResult | CellResult) -> None:
            failed = isinstance(result, CellResult) and result.error is not None
            code = result.exit_code if isinstance(result, ShellResult) else (1 if failed else 0)
            self.observers.exec(ExecEvent(
                task_id=info.task_id, project_id=info.project_id, language=info.language,
                command=f"[{kind} session] {command}"[:300], started_at=time.time() - result.duration,
                duration=result.duration, exit_code=code, timed_out=result.timed_out,
                oom_killed=False, stdout_bytes=len(result.stdout), stderr_bytes=len(result.stderr),
                truncated=result.truncated, stderr_tail=result.stderr[-4096:],
            ))

        limits = self.config.limits
        session: Session = (
            KernelSession(kind, driver, task_id, stream, interactive, default_timeout=limits.default_timeout,
                          max_output_bytes=limits.max_output_bytes, on_result=record) if driver
            else ShellSession(task_id, stream, interactive, default_timeout=limits.default_timeout,
                              max_output_bytes=limits.max_output_bytes, on_result=record)
        )
        try:
            await session.start(START_TIMEOUT)
        except BaseException:  # cut off or failed: nothing of it may stay behind
            session.abandon()
            raise
        sessions = self._state.setdefault(task_id, _TaskState()).sessions
        sessions.add(session)
        session.on_closed(lambda: sessions.discard(session))
        return session

    # -- terminals ---------------------------------------------------------------------------

    async def open_terminal(self, task_id: str, cols: int = 80, rows: int = 24) -> Terminal:
        """An interactive shell on a real pseudo-terminal in the task's sandbox (`Terminal`)."""
        info = self._tasks.get(task_id)
        if not (0 < cols < 10000 and 0 < rows < 10000):
            raise InvalidRequest(f"bad terminal size {cols}x{rows}")
        stream, interactive = self._long_lived(info, TERMINAL_SHELL, None, None, terminal=(cols, rows))
        terminal = Terminal(task_id, stream, interactive)
        try:
            await terminal.started(START_TIMEOUT)
        except BaseException:
            terminal.abandon()
            raise
        terminals = self._state.setdefault(task_id, _TaskState()).terminals
        terminals.add(terminal)
        terminal.on_closed(lambda: terminals.discard(terminal))
        return terminal

    # -- background processes ----------------------------------------------------------------

    async def start_process(self, task_id: str, command: str, name: str | None = None,
                            env: Mapping[str, str] | None = None, workdir: str | None = None) -> ProcessInfo:
        """Start `command` in the background (through the shell, in its own process group); it runs
        until it exits, is killed, or the task ends."""
        info = self._tasks.get(task_id)
        stream, interactive = self._long_lived(info, command, env, workdir)
        label = name or (command.split(maxsplit=1) or ["process"])[0]
        process = BackgroundProcess(label, command, stream, interactive)
        try:
            pid = await process.started(START_TIMEOUT)
        except BaseException:
            process.abandon()
            raise
        processes = self._state.setdefault(task_id, _TaskState()).processes
        processes[pid] = process
        process.on_exit(lambda end: self.observers.exec(ExecEvent(  # the monitor records its run
            task_id=info.task_id, project_id=info.project_id, language=info.language,
            command=f"[process {label}] {command}"[:300], started_at=process.started_at,
            duration=time.time() - process.started_at, exit_code=end.exit_code, timed_out=end.timed_out,
            oom_killed=end.oom_killed, stdout_bytes=end.stdout_bytes, stderr_bytes=end.stderr_bytes,
            truncated=process.dropped > 0, stderr_tail="",
        )))
        for old in [p for p, proc in processes.items() if not proc.running][:max(0, len(processes) - MAX_PROCESSES)]:
            del processes[old]  # the oldest exited ones: their output goes with them
        return process.info()

    def _process(self, task_id: str, pid: int) -> BackgroundProcess:
        self._tasks.get(task_id)  # TaskNotFound first
        process = self._state.get(task_id, _TaskState()).processes.get(pid)
        if process is None:
            raise InvalidRequest(f"task {task_id!r} has no background process {pid}")
        return process

    def list_processes(self, task_id: str) -> list[ProcessInfo]:
        self._tasks.get(task_id)
        return [p.info() for p in self._state.get(task_id, _TaskState()).processes.values()]

    async def process_output(self, task_id: str, pid: int, follow: bool = False) -> AsyncIterator[OutputChunk]:
        """Its output from the start of what is kept; with `follow`, on until it exits."""
        async for chunk in self._process(task_id, pid).output(follow):
            yield chunk

    async def send_stdin(self, task_id: str, pid: int, data: str | bytes) -> None:
        self._process(task_id, pid).send_stdin(data)

    async def kill_process(self, task_id: str, pid: int, signal: str | int = "TERM") -> None:
        self._process(task_id, pid).kill(signal_number(signal))

    async def wait_process(self, task_id: str, pid: int, timeout: float | None = None) -> ProcessInfo:
        """Its `ProcessInfo` once it exits, or as it is at `timeout`."""
        return await self._process(task_id, pid).wait(timeout)

    def _end_state(self, task_id: str) -> None:
        """The task is going away: its sessions and processes with it."""
        state = self._state.pop(task_id, None)
        if state is None:
            return
        for session in state.sessions:
            session.abandon()
        for terminal in state.terminals:
            terminal.abandon()
        for process in state.processes.values():
            with contextlib.suppress(Exception):
                process.abandon()
