"""The manager's task table: live tasks, creates in flight, and containers still being removed.

A task id is reserved before any engine work, so two creates of one task cannot both
start; a destroy of a task whose create is still running waits for it. A container
removed in the background keeps its name until the engine is done, so a task created
again under that name waits for the removal first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from runtime.errors import TaskExists, TaskNotFound


@dataclass(frozen=True)
class ContainerInfo:
    """What `create_container` made."""

    task_id: str
    project_id: str
    language: str
    container_id: str
    container_name: str
    volume_name: str
    image: str
    network: str
    created_at: float
    egress: tuple[str, ...] | None = None  # allowlisted: the hosts it may reach (`registries` expanded)


class TaskTable:
    def __init__(self) -> None:
        self._live: dict[str, ContainerInfo] = {}
        self._pending: dict[str, asyncio.Event] = {}
        self._removing: dict[str, Future[None]] = {}  # by container name
        self._failed: dict[str, Exception] = {}  # task id -> why it lost its container after create

    # -- live tasks ----------------------------------------------------------------------------

    @property
    def live(self) -> Mapping[str, ContainerInfo]:
        return dict(self._live)

    def peek(self, task_id: str) -> ContainerInfo | None:
        """The live task's container, or None (no error, no copy): for lookups from other threads."""
        return self._live.get(task_id)

    def get(self, task_id: str) -> ContainerInfo:
        info = self._live.get(task_id)
        if info is None:
            failed = self._failed.get(task_id)
            if failed is not None:
                raise failed
            raise TaskNotFound(f"no container for task {task_id!r} (create_container first)")
        return info

    def fail(self, task_id: str, reason: Exception) -> None:
        """The task lost its container after create returned: every later call on it raises `reason`."""
        self._live.pop(task_id, None)
        self._failed[task_id] = reason

    def add(self, info: ContainerInfo) -> None:
        self._live[info.task_id] = info
        self._failed.pop(info.task_id, None)

    def pop(self, task_id: str) -> ContainerInfo | None:
        return self._live.pop(task_id, None)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._live or task_id in self._pending

    # -- creates in flight -----------------------------------------------------------------------

    @contextlib.contextmanager
    def creating(self, task_id: str) -> Iterator[None]:
        """Hold the task id while its container is made; `TaskExists` if it is live or being made."""
        if task_id in self:
            raise TaskExists(f"task {task_id!r} already has a container")
        self._pending[task_id] = done = asyncio.Event()
        try:
            yield
        finally:
            del self._pending[task_id]
            done.set()

    async def settled(self, task_id: str) -> None:
        """Wait while the task's create is still running (a destroy must see what it made)."""
        pending = self._pending.get(task_id)
        if pending is not None:
            await pending.wait()

    # -- removals in the background ----------------------------------------------------------------

    def removing(self, name: str, future: Future[None]) -> None:
        self._removing[name] = future

        def done(f: Future[None]) -> None:  # may run in an engine thread
            if self._removing.get(name) is f:
                self._removing.pop(name, None)

        future.add_done_callback(done)

    async def removed(self, name: str) -> None:
        """A task re-created under a name still being removed waits for that removal."""
        future = self._removing.get(name)
        if future is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(future)

    async def all_removed(self) -> None:
        """Wait for every removal started so far."""
        pending = [asyncio.wrap_future(f) for f in self._removing.copy().values()]  # copy: threads pop
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
