"""A project's workspace as a whole: its disk quota and usage, snapshots, restores and forks.

The half of `ContainerManager` that acts on a project's volume rather than on a task. The
backend's storage (`Backend.storage`) does the work; here are the rules around it: ids are
checked, a snapshot is only ever found under its own project, a restore waits for no task but
refuses while one runs (its files would change under it), and a fork makes a new project only.
Snapshots are consistent: the storage takes them with the filesystem frozen, so every file is as
it was at one instant, even while a task writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runtime import labels
from runtime.backends.base import Backend, ResourceInUse
from runtime.backends.storage import SnapshotRecord, StorageStatus
from runtime.config import RuntimeConfig
from runtime.errors import InvalidRequest, SandboxError
from runtime.registry import Registry
from runtime.sandbox.events import DiskEvent, Observers
from runtime.sandbox.naming import VOLUME_PREFIX, validate_id, volume_name
from runtime.sandbox.owner import Owner
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.spec import VolumeMount
from runtime.sandbox.tasks import TaskTable
from runtime.units import parse_size

SNAPSHOT_NAME = "org.theappapp.snapshot-name"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    id: str
    project_id: str
    name: str | None
    created: float  # unix seconds
    used: int  # bytes the workspace held when it was taken


@dataclass(frozen=True)
class DiskUsage:
    project_id: str
    used: int  # bytes
    quota: int | None  # None: the volume has no quota (made before quotas, or on a host without them)


def quota_bytes(value: str | int | None) -> int | None:
    """A disk quota from bytes or a text such as "5g"; `InvalidRequest` when it is not one."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except SandboxError as err:
        raise InvalidRequest(f"disk_quota: {err}") from err


def _snapshot(record: SnapshotRecord) -> Snapshot:
    project = record.labels.get(labels.PROJECT) or record.volume.removeprefix(VOLUME_PREFIX)
    return Snapshot(record.id, project, record.labels.get(SNAPSHOT_NAME) or None, record.created, record.used)


class ProjectOperations:
    """Needs what `ContainerManager` sets up: its config, owner, backend, pool and tasks."""

    config: RuntimeConfig
    owner: Owner
    backend: Backend
    pool: WarmPool | None
    storage_status: StorageStatus | None
    observers: Observers
    registry: Registry
    _started: bool
    startup: Callable[[], Awaitable[None]]
    _restoring: set[str]
    _tasks: TaskTable
    settle: Callable[[], Awaitable[None]]
    _track: Callable[[asyncio.Future[None]], None]

    def _require_storage(self) -> None:
        if not self.backend.storage.enforced:
            problems = self.storage_status.problems if self.storage_status else ("startup() has not run",)
            raise InvalidRequest("project storage (quotas, snapshots) is not available here: " + "; ".join(problems))

    def _not_restoring(self, project_id: str) -> None:
        if project_id in self._restoring:
            raise InvalidRequest(f"project {project_id!r} is being restored from a snapshot; start its task when "
                                 "restore_project has returned")

    async def _quiet(self, project_id: str, action: str) -> None:
        """No task of this manager uses the project, and no spare holds its volume."""
        busy = sorted(t.task_id for t in self._tasks.live.values() if t.project_id == project_id)
        if busy:
            raise InvalidRequest(f"cannot {action} project {project_id!r} while its tasks run: {', '.join(busy)}; "
                                 "destroy them first")
        if self.pool is not None:
            await self.pool.drop(project_id)
        await self.settle()  # containers still being removed hold the volume

    async def delete_project_volume(self, project_id: str) -> bool:
        """Remove the project's volume and its files, and its language caches — only ever on request.

        False if there was none. Refused with `SandboxError` while a container uses it or when
        it is not this installation's.
        """
        from runtime.ops.volumes import remove_project_volume  # ops builds on the core, not the other way

        validate_id("project id", project_id)
        if self.pool is not None:
            await self.pool.drop(project_id)  # the project's idle spares mount the volume
        await self.settle()  # containers still being removed in the background hold the volume
        return bool(await remove_project_volume(self.backend, self.config.installation_id, project_id))

    async def _grow_to(self, project_id: str, quota: int) -> None:
        """A quota asked for is a quota had: a project whose volume exists (a spare made it, or an earlier
        task) gets at least `quota`; where quotas cannot be kept, the create is refused, not run unbounded."""
        self._require_storage()
        found = await self.backend.storage.usage([volume_name(project_id)])
        if found and found[0].quota is None:
            raise InvalidRequest(f"project {project_id!r} has a volume without a disk quota (made before quotas "
                                 "were on), and an existing plain volume cannot get one: use a new project")
        if found and found[0].quota is not None and found[0].quota < quota:
            await self.backend.storage.set_quota(volume_name(project_id), quota)

    def _disk_changed(self, project_id: str) -> None:
        """Read the project's usage in the background, for the observers (Prometheus' gauge)."""
        if self.backend.storage.enforced:
            self._track(asyncio.ensure_future(self._report_disk(project_id)))

    async def _report_disk(self, project_id: str) -> None:
        try:
            usage = await self.disk_usage(project_id)
        except SandboxError as err:  # gone meanwhile, or the storage failed: no figure, not an error
            log.debug("no disk usage for project %s: %s", project_id, err)
            return
        self.observers.disk(DiskEvent(project_id, usage.used, usage.quota, time.time()))

    async def prewarm(self, project_id: str, language: str, count: int = 1) -> int:
        """Make spares for (project, language) now, up to `count` within the pool's caps.

        Returns how many are ready; 0 with the pool off. For an orchestrator that knows tasks are coming.
        """
        validate_id("project id", project_id)
        lang = self.registry.resolve(language)
        self._not_restoring(project_id)
        if self.pool is None:
            return 0
        if not self._started:
            await self.startup()
        return await self.pool.prewarm(project_id, lang.name, count)

    async def disk_usage(self, project_id: str) -> DiskUsage:
        """Bytes used in the project's workspace and its quota; `InvalidRequest` if it has no volume."""
        validate_id("project id", project_id)
        found = await self.backend.storage.usage([volume_name(project_id)])
        if not found:
            raise InvalidRequest(f"project {project_id!r} has no volume")
        return DiskUsage(project_id, found[0].used, found[0].quota)

    async def set_disk_quota(self, project_id: str, quota: str | int) -> int:
        """Grow the project's quota (also while its tasks run); the size it now has. Quotas cannot shrink."""
        validate_id("project id", project_id)
        self._require_storage()
        size = quota_bytes(quota)
        assert size is not None
        grown = await self.backend.storage.set_quota(volume_name(project_id), size)
        self._disk_changed(project_id)
        return grown

    async def snapshot_project(self, project_id: str, name: str | None = None) -> str:
        """A read-only copy of the project's workspace as it is now; its id. Tasks may keep writing."""
        validate_id("project id", project_id)
        if name is not None and (not isinstance(name, str) or len(name) > 200 or "\0" in name):
            raise InvalidRequest("a snapshot name is text of at most 200 characters")
        self._require_storage()
        snapshot_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        tags = {labels.MANAGED: "true", labels.PROJECT: project_id, labels.INSTALLATION: self.owner.installation}
        if name:
            tags[SNAPSHOT_NAME] = name
        if await self.backend.inspect_volume(volume_name(project_id)) is None:  # else: read as made without a quota
            raise InvalidRequest(f"project {project_id!r} has no volume to snapshot")
        try:
            record = await self.backend.storage.snapshot(volume_name(project_id), snapshot_id, tags)
        except InvalidRequest as err:
            raise InvalidRequest(f"project {project_id!r}: {err}") from err
        return record.id

    async def list_snapshots(self, project_id: str) -> list[Snapshot]:
        """The project's snapshots, oldest first."""
        validate_id("project id", project_id)
        return [_snapshot(r) for r in await self.backend.storage.snapshots(volume_name(project_id))]

    async def restore_project(self, project_id: str, snapshot_id: str) -> None:
        """Make the project's workspace what the snapshot holds (its quota stays). No task may be running."""
        validate_id("project id", project_id)
        validate_id("snapshot id", snapshot_id)
        self._require_storage()
        self._not_restoring(project_id)
        self._restoring.add(project_id)  # from here, no task or spare of the project starts until it is done
        try:
            await self._quiet(project_id, "restore")
            await self.backend.storage.restore(volume_name(project_id), snapshot_id)
        except ResourceInUse as err:
            raise InvalidRequest(f"cannot restore project {project_id!r}: a container of another manager uses "
                                 f"its volume ({err})") from err
        finally:
            self._restoring.discard(project_id)
        self._disk_changed(project_id)

    async def fork_project(self, src_project_id: str, new_project_id: str, snapshot_id: str | None = None) -> None:
        """A new project whose workspace starts as the source's (now, or at `snapshot_id`); the source is untouched."""
        validate_id("project id", src_project_id)
        validate_id("project id", new_project_id)
        if snapshot_id is not None:
            validate_id("snapshot id", snapshot_id)
        self._require_storage()
        if src_project_id == new_project_id:
            raise InvalidRequest("a fork needs a new project id")
        if await self.backend.inspect_volume(volume_name(new_project_id)) is not None:
            raise InvalidRequest(f"project {new_project_id!r} already has a volume: a fork makes a new project")
        source = await self.backend.storage.usage([volume_name(src_project_id)])
        if not source:
            raise InvalidRequest(f"project {src_project_id!r} has no volume to fork")
        target = VolumeMount(volume_name(new_project_id), self.config.security.workspace,
                             self.owner.volume_labels(new_project_id),
                             quota=source[0].quota or self.config.storage.disk_quota_bytes)
        await self.backend.storage.clone(volume_name(src_project_id), snapshot_id, target)
        self._disk_changed(new_project_id)

    async def delete_snapshot(self, project_id: str, snapshot_id: str) -> bool:
        """False if the project has no such snapshot."""
        validate_id("project id", project_id)
        validate_id("snapshot id", snapshot_id)
        self._require_storage()
        return await self.backend.storage.delete_snapshot(volume_name(project_id), snapshot_id)
