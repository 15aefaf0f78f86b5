"""Starting a task's container: a warm spare when one is ready, else a cold create, and a clear
error when the name is taken or the image is missing. The one place a task's container is made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from runtime import labels
from runtime.backends.base import Backend, NameTaken
from runtime.errors import ImageMissing, InvalidIdentifier, SandboxError, TaskExists
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.spec import ContainerSpec

T = TypeVar("T")


async def start_container(
    backend: Backend, pool: WarmPool | None, spec: ContainerSpec, task_id: str, project_id: str
) -> tuple[str, asyncio.Future[None] | None]:
    """The id of a running container for the task, named `spec.name` — or, for a warm spare, being
    renamed to it: then the rename's future comes too (its failure is the task's: see `name_conflict`)."""
    language = spec.labels[labels.LANGUAGE]
    if pool is None:
        return await create_cold(backend, spec, task_id, project_id, language), None
    asked = time.monotonic()
    waited: float | None = None  # None: the task got no container
    try:
        # Any pool failure comes back as None: create cold.
        handover = await pool.take(project_id, language, image=spec.image, network=spec.network, name=spec.name)
        if handover is not None:
            waited = time.monotonic() - asked
            return handover.container_id, handover.renamed
        container_id = await create_cold(backend, spec, task_id, project_id, language)
        waited = time.monotonic() - asked
        return container_id, None
    finally:
        pool.served(spec.name, waited)  # the pool's demand learns how long the task waited


async def create_cold(backend: Backend, spec: ContainerSpec, task_id: str, project_id: str, language: str) -> str:
    try:
        return await backend.create(spec)
    except ImageMissing as err:
        raise ImageMissing(f"{err}; build it with: nox -s build -- {language}") from err
    except NameTaken as err:
        raise await name_conflict(backend, spec.name, task_id, project_id) from err


async def name_conflict(backend: Backend, name: str, task_id: str, project_id: str) -> SandboxError:
    """TaskExists if the holder is this very task, else the ids collide in the name."""
    holder = await backend.inspect(name)
    held = dict(holder.labels) if holder is not None else {}
    # A pool-made holder has no task label: its project label and the name pin the task down.
    held_task = held.get(labels.TASK) or (task_id if labels.POOL in held else None)
    if held_task == task_id and held.get(labels.PROJECT) == project_id:
        return TaskExists(f"task {task_id!r} of project {project_id!r} already has a container ({name})")
    return InvalidIdentifier(
        f"container name {name} is taken by project {held.get(labels.PROJECT)!r} task "
        f"{held.get(labels.TASK)!r}: ids that only differ in where a '-' splits them collide; choose another"
    )


async def guarded(backend: Backend, container_id: str, renaming: asyncio.Future[None] | None,
                  step: Coroutine[Any, Any, T]) -> T:
    """`step` for a container just started for a task; if it fails, the container goes (and the error stays)."""
    try:
        return await step
    except BaseException:
        if renaming is not None:
            renaming.cancel()
        backend.remove_soon(container_id)
        raise
