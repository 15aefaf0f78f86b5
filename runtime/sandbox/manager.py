"""ContainerManager: one hardened container per task, exec, files, per-project volumes.

    manager = get_container_manager()
    await manager.startup()
    await manager.create_container(task_id="task-123", project_id="proj-456", language="python")
    result = await manager.exec_command(task_id="task-123", command="python script.py")
    await manager.destroy_container(task_id="task-123")

Orchestration only: the engine is a `Backend` (runtime/backends), the task table, the
warm pool, run_code and the event fan-out are modules of their own. Removal is moved to
the background (`destroy_in_background`) so a destroy returns once the task is detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from runtime import labels
from runtime.backends import open_backend
from runtime.backends.base import Backend, NameTaken, NetworkPolicyStatus
from runtime.backends.egress import EgressStatus
from runtime.backends.storage import StorageStatus
from runtime.config import RuntimeConfig
from runtime.errors import EngineError, InvalidRequest, SandboxError
from runtime.monitoring.monitor import SandboxMonitor
from runtime.registry import Registry, get_registry
from runtime.sandbox import adoption, creation, startup
from runtime.sandbox.egress import ALLOWLIST, EgressPolicies
from runtime.sandbox.events import LifecycleEvent, Observer, Observers, PoolEvent, ResourceUsage
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.naming import container_name, validate_id, volume_name
from runtime.sandbox.operations import TaskOperations
from runtime.sandbox.owner import Owner
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.projects import ProjectOperations, quota_bytes
from runtime.sandbox.spec import NO_NETWORK, build_spec, network_for
from runtime.sandbox.stateful import StatefulOperations
from runtime.sandbox.tasks import ContainerInfo, TaskTable

if TYPE_CHECKING:
    from runtime.sandbox.runcode import CodeRunner

log = logging.getLogger(__name__)
_COMMAND_CHARS = 300
_STDERR_TAIL = 4096


class ContainerManager(TaskOperations, StatefulOperations, ProjectOperations):
    """Creates, drives and destroys task sandboxes on one engine (exec and files: `TaskOperations`;
    sessions and background processes: `StatefulOperations`; a project's quota, usage, snapshots and
    forks: `ProjectOperations`)."""

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        *,
        registry: Registry | None = None,
        observers: Iterable[Observer] = (),
        backend: Backend | None = None,
    ) -> None:
        self.config = config or RuntimeConfig.load()
        self.registry = registry or get_registry(self.config.engine.registry_path)
        self.owner = Owner(installation=self.config.installation_id)
        self.observers = Observers(observers)
        self.backend = backend or open_backend(self.config)
        self.network_status: NetworkPolicyStatus | None = None
        self.storage_status: StorageStatus | None = None  # disk quotas: enforced, or why not (startup)
        self.images: dict[str, bool] = {}  # language -> image present, as seen by startup()
        self.adopted: list[str] = []  # task ids startup() took over from a manager that is gone
        self._tasks = TaskTable()
        self._state = {}  # task id -> its sessions and background processes
        self._runner: CodeRunner | None = None
        self._jobs: set[asyncio.Future[None]] = set()  # background work of the manager's own
        self._started = False
        self.pool: WarmPool | None = self._new_pool()
        self._egress = EgressPolicies(self.backend, self.config, self.observers, self._tasks.peek)
        self._restoring: set[str] = set()  # projects whose workspace is being replaced: no task may start
        if self.config.monitor.enabled and not any(isinstance(o, SandboxMonitor) for o in self.observers.members):
            # On by default, so `theappapp-sandbox stats` shows an orchestrator's work without wiring.
            self.observers.add(SandboxMonitor(self.config.monitor.db))

    def _new_pool(self) -> WarmPool | None:
        if not self.config.pool.enabled:
            return None
        return WarmPool(self.backend, self.config, self.owner, self.registry, network_for(self.config, None),
                        on_event=lambda kind, key: self.observers.pool(PoolEvent(kind, key[0], key[1], time.time())))

    # -- lifecycle of the manager ----------------------------------------------------------------

    async def startup(self) -> None:
        """Engine reachable, OCI runtime known, images listed, network ready — or a clear error.

        Also takes over this installation's task containers whose manager process is gone.
        """
        ready = await startup.prepare(self.backend, self.config, self.registry)
        self.images, self.network_status, self.storage_status = ready.images, ready.network, ready.storage
        if self.config.network.mode == ALLOWLIST or self.config.egress.allow:
            # Configured for allowlists: the proxy now. Otherwise the first allowlisted task starts it.
            egress = await self._egress.prepare(self._owner_labels())
            if not egress.ready:
                log.warning("egress allowlists are not available: %s", "; ".join(egress.problems))
        self._started = True
        if self.config.tasks.adopt_orphans:
            await self._adopt_orphans()

    def _owner_labels(self) -> dict[str, str]:
        return {**self.owner.owner_labels(), labels.INSTALLATION: self.owner.installation}

    async def _adopt_orphans(self) -> None:
        tag = self.config.engine.image_tag
        adopted = adoption.adopt_orphaned_tasks(self.backend, self.owner, self.registry, self._tasks, image_tag=tag)
        for info in await adopted:
            self.adopted.append(info.task_id)
            self._lifecycle("adopt", info.task_id, info.project_id, info.language, time.time(), time.monotonic())

    async def shutdown(self) -> None:
        """Destroy every container this manager created, then release the engine connection."""
        pool = self.pool
        if pool is not None:
            await pool.shutdown()  # first, so the destroys below refill nothing
        await asyncio.gather(*(self.destroy_container(t) for t in list(self._tasks.live)), return_exceptions=True)
        await self.settle()
        self.pool = self._new_pool() if pool is not None else None  # a later startup() starts empty
        if self._runner is not None:
            self._runner.close()  # its syntax-check process, if a large file started one
        for observer in self.observers.members:
            if isinstance(observer, SandboxMonitor):
                observer.flush()
        self.backend.egress.close()
        self.backend.close()
        self._started = False

    def add_observer(self, observer: Observer) -> None:
        self.observers.add(observer)

    @property
    def tasks(self) -> Mapping[str, ContainerInfo]:
        return self._tasks.live

    @property
    def egress_status(self) -> EgressStatus | None:
        """How far egress allowlists could be set up here (None: not tried yet)."""
        return self._egress.status

    # -- containers --------------------------------------------------------------------------

    async def create_container(
        self, task_id: str, project_id: str, language: str, *, network: str | None = None,
        egress: Iterable[str] | None = None, disk_quota: str | int | None = None,
    ) -> ContainerInfo:
        """Start a fresh hardened container for the task, with the project's volume at /workspace.

        `network`: "sandbox" (the outside, not the host or peers), "none", or "allowlist": only the hosts
        in `egress` (default: config `egress_allow`), through the egress proxy; `egress` alone implies it.
        `disk_quota` ("5g", or bytes): the project's quota when its volume is made (default: config
        `disk_quota`); given for a project that has a smaller one, the quota grows to it.
        """
        validate_id("task id", task_id)
        name = container_name(project_id, task_id)
        lang = self.registry.resolve(language)
        if network not in (None, NO_NETWORK, "sandbox", ALLOWLIST):
            raise InvalidRequest(f"network must be 'sandbox', 'allowlist' or 'none', got {network!r}")
        hosts = self._egress.wanted(network, egress)
        quota = quota_bytes(disk_quota)
        self._not_restoring(project_id)
        with self._tasks.creating(task_id):
            t0, started_at = time.monotonic(), time.time()
            try:
                if not self._started:
                    await self.startup()
                if hosts is not None:
                    await self._egress.require_ready(self._owner_labels())
                net = network_for(self.config, ALLOWLIST if hosts is not None else network)
                labels = self.owner.labels(
                    task_id=task_id, project_id=project_id, language=lang.name,
                    ttl=self.config.tasks.container_ttl, now=started_at, extra=self.config.tasks.extra_labels,
                )
                spec = build_spec(self.config, self.registry, self.owner, name=name, project_id=project_id,
                                  language=lang, labels=labels, network=net, disk_quota=quota)
                if quota is not None:
                    await self._grow_to(project_id, quota)
                await self._tasks.removed(name)
                container_id, renaming = await creation.start_container(
                    self.backend, self.pool, spec, task_id, project_id)
                allowed = None
                if hosts is not None:
                    allowed = await creation.guarded(self.backend, container_id, renaming, self._egress.apply(
                        container_id, spec.image, task_id, project_id, hosts))
                info = ContainerInfo(task_id, project_id, lang.name, container_id, name, volume_name(project_id),
                                     spec.image, net, started_at, allowed)
                self._tasks.add(info)
                if renaming is not None:
                    self._track(renaming)
                    renaming.add_done_callback(lambda done: self._renamed(info, done))
            except BaseException as err:
                self._lifecycle("create_failed", task_id, project_id, lang.name, started_at, t0, error=str(err))
                raise
        self._lifecycle("create", task_id, project_id, lang.name, started_at, t0)
        return info

    def _renamed(self, info: ContainerInfo, done: asyncio.Future[None]) -> None:
        """A warm hand-over's rename finished: if the task's name was taken, the task ends with the reason."""
        err = None if done.cancelled() else done.exception()
        if err is None or self._tasks.live.get(info.task_id) != info:
            return  # renamed, or the task is gone already
        self._track(asyncio.ensure_future(self._rename_failed(info, err)))

    async def _rename_failed(self, info: ContainerInfo, err: BaseException) -> None:
        if isinstance(err, NameTaken):
            reason: SandboxError = await creation.name_conflict(
                self.backend, info.container_name, info.task_id, info.project_id)
        else:
            reason = err if isinstance(err, SandboxError) else EngineError(f"renaming the task's container: {err}")
        log.warning("task %s lost its container: %s", info.task_id, reason)
        self._tasks.fail(info.task_id, reason)
        self._end_state(info.task_id)
        self.backend.remove_soon(info.container_id)

    def _track(self, job: asyncio.Future[None]) -> None:
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def destroy_container(self, task_id: str) -> bool:
        """Remove the task's container (the volume stays). True if there was one; idempotent."""
        await self._tasks.settled(task_id)
        info = self._tasks.pop(task_id)
        if info is None:
            return False
        self._end_state(task_id)
        self._egress.ended(task_id, info.project_id)
        self._disk_changed(info.project_id)
        t0, at = time.monotonic(), time.time()
        usage = self.backend.usage(info.container_id)
        if self.pool is not None:
            self.pool.refill(info.project_id, info.language)
        if self.config.tasks.destroy_in_background:
            # Detached: the task is gone from the manager; the engine's removal finishes off the critical path.
            self._remove_in_background(info, at, t0)
        else:
            try:
                await self.backend.remove(info.container_id)
            except BaseException as err:
                self._lifecycle("destroy_failed", task_id, info.project_id, info.language, at, t0, error=str(err))
                raise
        self._lifecycle("destroy", task_id, info.project_id, info.language, at, t0, usage=usage)
        return True

    def _remove_in_background(self, info: ContainerInfo, at: float, t0: float) -> None:
        """If the removal fails, observers get `destroy_failed` later and the labelled container is
        left to the cleanup job (its expiry, or its owner's death, makes it an orphan)."""
        loop = asyncio.get_running_loop()
        future = self.backend.remove_soon(info.container_id)
        self._tasks.removing(info.container_name, future)

        def done(f: Future[None]) -> None:  # may run in an engine thread
            err = None if f.cancelled() else f.exception()
            if err is None:
                return
            log.warning("background removal of %s failed (cleanup will remove it): %s", info.container_name, err)
            with contextlib.suppress(RuntimeError):  # the loop is gone: the log line stands
                loop.call_soon_threadsafe(lambda: self._lifecycle(
                    "destroy_failed", info.task_id, info.project_id, info.language, at, t0, error=str(err)))

        future.add_done_callback(done)

    async def settle(self) -> None:
        """Wait until every background rename and removal started so far (tasks and spares) has finished."""
        while self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)
        await self._tasks.all_removed()
        if self.pool is not None:
            await self.pool.settle()
        await self.backend.settle()

    @contextlib.asynccontextmanager
    async def task(
        self, task_id: str, project_id: str, language: str, *, network: str | None = None,
        egress: Iterable[str] | None = None, disk_quota: str | int | None = None,
    ) -> AsyncIterator[Sandbox]:
        """`async with manager.task(...) as sandbox:` — the container is destroyed on the way out, always."""
        await self.create_container(task_id, project_id, language, network=network, egress=egress,
                                    disk_quota=disk_quota)
        try:
            yield Sandbox(self, task_id)
        finally:
            await asyncio.shield(self.destroy_container(task_id))

    # -- observers -------------------------------------------------------------------------------

    def _lifecycle(self, kind: Any, task_id: str, project_id: str, language: str, at: float, t0: float, *,
                   error: str | None = None, usage: ResourceUsage | None = None) -> None:
        self.observers.lifecycle(LifecycleEvent(
            kind=kind, task_id=task_id, project_id=project_id, language=language, at=at,
            duration=time.monotonic() - t0, error=error, usage=usage or ResourceUsage(),
        ))


_instance: ContainerManager | None = None


def get_container_manager(config: RuntimeConfig | None = None, **overrides: Any) -> ContainerManager:
    """The process-wide manager, created on first call (config from arguments, THEAPPAPP_* env, defaults)."""
    global _instance
    wanted = config or (RuntimeConfig.load(**overrides) if overrides else None)
    if _instance is None:
        _instance = ContainerManager(wanted)
    elif wanted is not None and wanted != _instance.config:
        raise InvalidRequest("the process-wide manager already exists with another configuration")
    return _instance
