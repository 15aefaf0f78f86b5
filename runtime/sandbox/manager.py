"""ContainerManager: one hardened container per task, exec, files, per-project volumes.

    manager = get_container_manager()
    await manager.startup()
    await manager.create_container(task_id="task-123", project_id="proj-456", language="python")
    result = await manager.exec_command(task_id="task-123", command="python script.py")
    await manager.destroy_container(task_id="task-123")

Creation and removal are split into small steps (`_create_started`, `_adopt`,
`_remove`) so a warm pool can hand over a pre-created container and removal can be
moved to the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import docker.errors

from runtime import labels
from runtime.backends.docker.cgroups import ContainerCgroup
from runtime.backends.docker.engine import Engine
from runtime.config import RuntimeConfig
from runtime.errors import (
    FileMissing,
    ImageMissing,
    InvalidIdentifier,
    InvalidPath,
    SandboxError,
    TaskExists,
    TaskNotFound,
    ValidationFailed,
)
from runtime.registry import Language, Registry, get_registry
from runtime.sandbox.events import ExecEvent, LifecycleEvent, Observer, ResourceUsage
from runtime.sandbox.execution import ExecRequest, ExecResult, ExecStream, ExecTarget, Executor
from runtime.sandbox.files import build_archive, check_resolved, resolve_command, single_file
from runtime.sandbox.naming import container_name, validate_id, volume_name
from runtime.sandbox.owner import Owner
from runtime.sandbox.paths import relative_parts
from runtime.sandbox.pool import GATE, LOAD, WarmPool, remove_container_sync
from runtime.sandbox.spec import ContainerSpec, project_cache

if TYPE_CHECKING:
    from runtime.backends.docker.network import NetworkPolicyStatus
    from runtime.sandbox.runcode import RunResult
    from runtime.validation import CodeValidator

log = logging.getLogger(__name__)
_COMMAND_CHARS = 300
_STDERR_TAIL = 4096


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


@dataclass
class _Task:
    info: ContainerInfo
    target: ExecTarget


def build_command(language: Language, filename: str) -> str:
    """The registry's compile-and-run command for a file, for callers that run programs."""
    return language.command_for(filename)


P = ParamSpec("P")
R = TypeVar("R")


def _engine_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Any engine refusal not handled inside becomes a `SandboxError` (one tree for callers to catch)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except docker.errors.DockerException as err:
            detail = getattr(err, "explanation", None) or str(err)
            raise SandboxError(f"the Docker engine refused {fn.__name__}: {detail}") from err

    return wrapper


class ContainerManager:
    """Creates, drives and destroys task sandboxes on one Docker engine."""

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        *,
        registry: Registry | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        self.config = config or RuntimeConfig.load()
        self.registry = registry or get_registry(self.config.registry_path)
        self.owner = Owner(installation=self.config.installation_id)
        self.observers: list[Observer] = list(observers)
        self.network_status: NetworkPolicyStatus | None = None
        self.images: dict[str, bool] = {}  # language -> image present, as seen by startup()
        self._engine = Engine(self.config.docker_host, self.config.api_timeout)
        self._executor = Executor(self._engine, self.config)
        self._tasks: dict[str, _Task] = {}
        self._pending: dict[str, asyncio.Event] = {}
        self.validator: CodeValidator | None = None  # run_code's; made on first use, replaceable (e.g. strict)
        self._cgroup_layout: tuple[int, str] | None = None
        self._host_kill = False
        self._started = False
        # Background removals by container name: shutdown and a re-create of that name wait for them.
        self._removing: dict[str, Future[Any]] = {}
        self.pool: WarmPool | None = self._new_pool()

    def _new_pool(self) -> WarmPool | None:
        if not self.config.pool_enabled:
            return None
        return WarmPool(
            lambda: self._engine, self.config, self.owner, self.registry, self._network_name(None)
        )

    # -- lifecycle of the manager ------------------------------------------------------------

    @_engine_errors
    async def startup(self) -> None:
        """Engine reachable, OCI runtime known, images listed, network ready — or a clear error."""
        if self._engine.closed:
            self._engine = Engine(self.config.docker_host, self.config.api_timeout)
            self._executor = Executor(self._engine, self.config)
        client = await self._engine.connect()
        info: dict[str, Any] = await self._engine.call(client.info)
        self._cgroup_layout = (int(info.get("CgroupVersion") or 1), str(info.get("CgroupDriver") or "cgroupfs"))
        runtime = self.config.runtime or str(info.get("DefaultRuntime") or "runc")
        if runtime not in (info.get("Runtimes") or {}):
            raise SandboxError(
                f"OCI runtime {runtime!r} is not configured on the engine "
                f"(available: {', '.join(sorted(info.get('Runtimes') or {}))})"
            )
        # The host-side fallback killer acts on host pids: only valid for runc on this very host.
        self._host_kill = runtime == "runc" and self._engine.endpoint()[0] == "unix"
        tags: set[str] = set()
        for image in await self._engine.call(client.api.images, name=None):
            tags.update(image.get("RepoTags") or ())
        self.images = {
            name: f"{lang.image}:{self.config.image_tag}" in tags for name, lang in self.registry.languages.items()
        }
        missing = sorted({self.registry.resolve(r).name for r in self.config.required_languages} - {
            name for name, present in self.images.items() if present
        })
        if missing:
            raise ImageMissing(
                f"images not on this engine for: {', '.join(missing)}; build them with: "
                + "; ".join(f"nox -s build -- {name}" for name in missing)
            )
        if self.config.network == "sandbox":
            await self._ensure_network(client)
        self._started = True

    async def _ensure_network(self, client: docker.DockerClient) -> None:
        from runtime.backends.docker.network import ensure_sandbox_network  # the network helper's module

        try:
            status = await self._engine.call(
                ensure_sandbox_network, client, self.config.network_name, install_firewall=self.config.install_firewall
            )
        except docker.errors.APIError as err:
            raise SandboxError(f"cannot create the sandbox network {self.config.network_name!r}: {err}") from err
        self.network_status = status
        if status.problems:
            log.warning(
                "sandbox network %s is NOT fully isolated: %s", status.network_name, "; ".join(status.problems)
            )

    async def shutdown(self) -> None:
        """Destroy every container this manager created, then release the engine connection."""
        pool = self.pool
        if pool is not None:
            await pool.shutdown()  # first, so the destroys below refill nothing
        await asyncio.gather(*(self.destroy_container(t) for t in list(self._tasks)), return_exceptions=True)
        await self.settle()
        self.pool = self._new_pool() if pool is not None else None  # a later startup() starts empty
        if self.validator is not None:
            self.validator.close()  # its syntax-check process, if a large file started one
        self._engine.close()
        self._started = False

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    @property
    def tasks(self) -> Mapping[str, ContainerInfo]:
        return {t: task.info for t, task in self._tasks.items()}

    # -- containers ------------------------------------------------------------------------

    @_engine_errors
    async def create_container(
        self, task_id: str, project_id: str, language: str, *, network: str | None = None
    ) -> ContainerInfo:
        """Start a fresh hardened container for the task, with the project's volume at /workspace."""
        validate_id("task id", task_id)
        name = container_name(project_id, task_id)
        lang = self.registry.resolve(language)
        if network not in (None, "none", "sandbox"):
            raise SandboxError(f"network must be 'sandbox' or 'none', got {network!r}")
        if task_id in self._tasks or task_id in self._pending:
            raise TaskExists(f"task {task_id!r} already has a container")
        self._pending[task_id] = done = asyncio.Event()
        t0, started_at = time.monotonic(), time.time()
        try:
            if not self._started:
                await self.startup()
            net = self._network_name(network)
            volume = volume_name(project_id)
            spec = ContainerSpec(
                image=f"{lang.image}:{self.config.image_tag}",
                name=name,
                labels=self.owner.labels(
                    task_id=task_id,
                    project_id=project_id,
                    language=lang.name,
                    ttl=self.config.container_ttl,
                    now=started_at,
                    extra=self.config.extra_labels,
                ),
                volume=volume,
                volume_labels=self.owner.volume_labels(project_id),
                cache=project_cache(self.owner, project_id, lang),
                network=net,
                resources=self.registry.resources_for(lang),
                config=self.config,
            )
            await self._wait_removed(name)
            # A warm spare when one is ready and fresh; any pool failure comes back as None: create cold.
            container_id = None
            if self.pool is not None:
                container_id = await self.pool.take(project_id, lang.name, image=spec.image, network=net, name=name)
            if container_id is None:
                container_id = await self._create_started(spec, task_id, project_id)
            info = ContainerInfo(
                task_id, project_id, lang.name, container_id, name, volume, spec.image, net, started_at
            )
            self._adopt(info)
        except BaseException as err:
            self._emit_lifecycle("create_failed", task_id, project_id, lang.name, started_at, t0, error=str(err))
            raise
        finally:
            del self._pending[task_id]
            done.set()
        self._emit_lifecycle("create", task_id, project_id, lang.name, started_at, t0)
        return info

    def _network_name(self, network: str | None) -> str:
        mode = network or self.config.network
        return "none" if mode == "none" else self.config.network_name

    @_engine_errors
    async def delete_project_volume(self, project_id: str) -> bool:
        """Remove the project's volume and its files, and its language caches — only ever on request.

        False if there was none. Refused with `SandboxError` while a container uses it or when
        it is not this installation's.
        """
        from runtime.ops.cleanup import remove_project_volume

        client = await self._engine.connect()
        if self.pool is not None:
            await self.pool.drop(project_id)  # the project's idle spares mount the volume
        await self.settle()  # containers still being removed in the background hold the volume
        removed = await self._engine.call(
            remove_project_volume, client.api, self.config.installation_id, project_id
        )
        return bool(removed)

    async def _create_started(self, spec: ContainerSpec, task_id: str, project_id: str) -> str:
        """Create and start the container; nothing is left behind if either step fails."""
        api = self._engine.client.api
        host_config = api.create_host_config(**spec.host_config())
        try:
            created = await self._engine.call(
                LOAD.call,  # engine load: the pool makes spares only with spare capacity
                api.create_container,
                **spec.create_kwargs(host_config),
                # Created after all, but nobody waits for it any more (deadline, cancel): remove it.
                on_abandon=lambda made: api.remove_container(made["Id"], force=True),
            )
        except docker.errors.ImageNotFound as err:
            lang = spec.labels[labels.LANGUAGE]
            raise ImageMissing(
                f"image {spec.image} is not on this engine; build it with: nox -s build -- {lang}"
            ) from err
        except docker.errors.APIError as err:
            if err.status_code == 409:
                raise await self._name_conflict(spec.name, task_id, project_id) from err
            raise
        container_id = str(created["Id"])
        try:
            await self._engine.call(GATE.shared_call, api.start, container_id)  # GATE: see runtime/pool.py
        except BaseException:
            self._remove_soon(container_id)
            raise
        return container_id

    async def _name_conflict(self, name: str, task_id: str, project_id: str) -> SandboxError:
        """TaskExists if the holder is this very task, else the ids collide in the name."""
        try:
            holder = await self._engine.call(self._engine.client.api.inspect_container, name)
            held = holder.get("Config", {}).get("Labels") or {}
        except docker.errors.NotFound:
            held = {}
        # A pool-made holder has no task label: its project label and the name pin the task down.
        held_task = held.get(labels.TASK) or (task_id if labels.POOL in held else None)
        if held_task == task_id and held.get(labels.PROJECT) == project_id:
            return TaskExists(f"task {task_id!r} of project {project_id!r} already has a container ({name})")
        return InvalidIdentifier(
            f"container name {name} is taken by project {held.get(labels.PROJECT)!r} task "
            f"{held.get(labels.TASK)!r}: ids that only differ in where a '-' splits them collide; choose another"
        )

    def _adopt(self, info: ContainerInfo) -> None:
        layout = self._cgroup_layout or (1, "cgroupfs")
        cgroup = ContainerCgroup.locate(info.container_id, *layout)
        self._tasks[info.task_id] = _Task(info, ExecTarget(info.container_id, cgroup, self._host_kill))

    @_engine_errors
    async def destroy_container(self, task_id: str) -> bool:
        """Remove the task's container (the volume stays). True if there was one; idempotent."""
        pending = self._pending.get(task_id)
        if pending is not None:
            await pending.wait()
        task = self._tasks.pop(task_id, None)
        if task is None:
            return False
        info, t0, at = task.info, time.monotonic(), time.time()
        usage = task.target.cgroup.usage() if task.target.cgroup else ResourceUsage()
        if self.pool is not None:
            self.pool.refill(info.project_id, info.language)
        if self.config.destroy_in_background:
            # Detached: the task is gone from the manager; the engine's removal finishes off the critical path.
            self._remove_in_background(info, at, t0)
            self._emit_lifecycle("destroy", task_id, info.project_id, info.language, at, t0, usage=usage)
            return True
        try:
            await self._remove(info.container_id)
        except BaseException as err:
            self._emit_lifecycle("destroy_failed", task_id, info.project_id, info.language, at, t0, error=str(err))
            raise
        self._emit_lifecycle("destroy", task_id, info.project_id, info.language, at, t0, usage=usage)
        return True

    def _remove_in_background(self, info: ContainerInfo, at: float, t0: float) -> None:
        """Removal in the engine's thread pool, independent of this event loop.

        If it fails, observers get `destroy_failed` later and the labelled container is
        left to the cleanup job (its expiry, or its owner's death, makes it an orphan).
        """
        loop = asyncio.get_running_loop()
        future = self._engine.submit(remove_container_sync, self._engine, info.container_id)
        self._removing[info.container_name] = future

        def done(f: Future[Any]) -> None:  # runs in the engine's thread
            if self._removing.get(info.container_name) is f:
                self._removing.pop(info.container_name, None)
            err = None if f.cancelled() else f.exception()
            if err is None:
                return
            log.warning("background removal of %s failed (cleanup will remove it): %s", info.container_name, err)
            emit = functools.partial(
                self._emit_lifecycle, "destroy_failed", info.task_id, info.project_id, info.language, at, t0,
                error=str(err),
            )
            with contextlib.suppress(RuntimeError):  # the loop is gone: the log line stands
                loop.call_soon_threadsafe(emit)

        future.add_done_callback(done)

    async def _wait_removed(self, name: str) -> None:
        """A task re-created under a name still being removed waits for that removal."""
        future = self._removing.get(name)
        if future is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(future)

    async def settle(self) -> None:
        """Wait until every background removal started so far (tasks and spares) has finished."""
        pending = [asyncio.wrap_future(f) for f in self._removing.copy().values()]  # copy: threads pop
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.pool is not None:
            await self.pool.settle()

    async def prewarm(self, project_id: str, language: str, count: int = 1) -> int:
        """Make spares for (project, language) now, up to `count` within the pool's caps.

        Returns how many are ready; 0 with the pool off. For an orchestrator that knows tasks are coming.
        """
        validate_id("project id", project_id)
        lang = self.registry.resolve(language)
        if self.pool is None:
            return 0
        if not self._started:
            await self.startup()
        return await self.pool.prewarm(project_id, lang.name, count)

    async def _remove(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            await self._engine.call(remove_container_sync, self._engine, container_id)

    def _remove_soon(self, container_id: str) -> None:
        """Fire-and-forget removal (also safe from a cancelled task)."""
        with contextlib.suppress(RuntimeError):
            self._engine.submit(remove_container_sync, self._engine, container_id)

    @contextlib.asynccontextmanager
    async def task(
        self, task_id: str, project_id: str, language: str, *, network: str | None = None
    ) -> AsyncIterator[Sandbox]:
        """`async with manager.task(...) as sandbox:` — the container is destroyed on the way out, always."""
        await self.create_container(task_id, project_id, language, network=network)
        try:
            yield Sandbox(self, task_id)
        finally:
            await asyncio.shield(self.destroy_container(task_id))

    # -- exec ------------------------------------------------------------------------------

    def _task(self, task_id: str) -> _Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(f"no container for task {task_id!r} (create_container first)")
        return task

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
        task = self._task(task_id)
        request = ExecRequest.shell(
            self.config, command, timeout=timeout, env=env, workdir=workdir, stdin=stdin,
            max_output_bytes=max_output_bytes,
        )
        started_at = time.time()

        def done(result: ExecResult) -> None:
            self._emit_exec(task.info, command, started_at, result)
            if self.pool is not None:
                # The task has started: refill its key now, after (not during) its first command.
                self.pool.refill(task.info.project_id, task.info.language)

        return ExecStream(self._executor, task.target, request, done)

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
        """Write `code` into /workspace, validate it, run it with the language's command.

        The findings come back with the result and never stop the run, unless `strict`:
        then error-severity findings raise `ValidationFailed` before anything is written.
        The default file is `main<ext>` (Java: named after its public class).
        """
        from runtime.sandbox.runcode import RunResult, check_filename, default_filename
        from runtime.validation import CodeValidator, blocking
        from runtime.validation.validator import CHILD_PROCESS_FROM

        task = self._task(task_id)
        lang = self.registry.resolve(task.info.language)
        name = check_filename(filename) if filename is not None else default_filename(lang, code)
        if self.validator is None:
            self.validator = CodeValidator(self.registry)
        validate = functools.partial(self.validator.validate, code, lang.name, filename=name)
        # A 1 KB snippet validates in well under a millisecond; only big files go to a thread
        # (their syntax check runs in the validator's child process, outside the GIL).
        findings = await asyncio.to_thread(validate) if len(code) >= CHILD_PROCESS_FROM else validate()
        if strict and blocking(findings):
            errors = blocking(findings)
            raise ValidationFailed(
                f"{len(errors)} error(s) in {name}: " + "; ".join(str(f) for f in errors[:3]), tuple(findings)
            )
        await self.write_files(task_id, {name: code})
        command = lang.command_for(name)
        result = await self.exec_command(task_id, command, timeout=timeout, env=env, stdin=stdin)
        return RunResult(result, tuple(findings), name, command)

    # -- files -----------------------------------------------------------------------------

    @_engine_errors
    async def write_files(self, task_id: str, files: Mapping[str, str | bytes]) -> list[str]:
        """Write files under /workspace (parents created), owned by the sandbox user. Returns their paths."""
        task = self._task(task_id)
        uid, _, gid = self.config.user.partition(":")
        archive, paths = build_archive(
            files, uid=int(uid), gid=int(gid or uid), max_bytes=self.config.max_archive_bytes
        )
        await self._check_links(task, paths)
        await self._engine.call(
            self._engine.client.api.put_archive, task.info.container_id, self.config.workspace, archive
        )
        return paths

    @_engine_errors
    async def read_file(self, task_id: str, path: str) -> bytes:
        """The bytes of one regular file under /workspace."""
        task = self._task(task_id)
        rel = "/".join(relative_parts(path))
        (full,) = await self._check_links(task, [rel])  # a link inside the workspace is followed
        limit = self.config.max_archive_bytes

        def fetch() -> bytes:
            try:
                chunks, stat = self._engine.client.api.get_archive(task.info.container_id, full)
            except docker.errors.NotFound as err:
                raise FileMissing(f"{rel!r} does not exist in the workspace") from err
            if int(stat.get("size", 0)) > limit:
                raise _TooBig(f"{rel!r} is {stat.get('size')} bytes, over the {limit}-byte limit")
            data = bytearray()
            for chunk in chunks:
                data += chunk
                if len(data) > limit + 1024 * 1024:
                    raise _TooBig(f"{rel!r} is over the {limit}-byte limit")
            return bytes(data)

        try:
            archive = await self._engine.call(fetch)
        except _TooBig as err:
            raise InvalidPath(str(err)) from err
        return single_file(archive, rel)

    async def _check_links(self, task: _Task, paths: list[str]) -> list[str]:
        """Where the paths really lead; `InvalidPath` if an existing symlink leads out of the workspace."""
        output = await self._executor.run_internal(
            task.target, resolve_command(self.config.workspace, paths), self.config.api_timeout
        )
        return check_resolved(self.config.workspace, paths, output.decode("utf-8", "surrogateescape"))

    # -- observers -------------------------------------------------------------------------

    def _emit_exec(self, info: ContainerInfo, command: str, started_at: float, result: ExecResult) -> None:
        event = ExecEvent(
            task_id=info.task_id,
            project_id=info.project_id,
            language=info.language,
            command=command[:_COMMAND_CHARS],
            started_at=started_at,
            duration=result.duration,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            oom_killed=result.oom_killed,
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            truncated=result.truncated,
            stderr_tail=result.stderr[-_STDERR_TAIL:],
        )
        for observer in self.observers:
            try:
                observer.on_exec(event)
            except Exception:
                log.exception("observer %r failed on an exec event", observer)

    def _emit_lifecycle(
        self,
        kind: Any,
        task_id: str,
        project_id: str,
        language: str,
        at: float,
        t0: float,
        *,
        error: str | None = None,
        usage: ResourceUsage | None = None,
    ) -> None:
        event = LifecycleEvent(
            kind=kind, task_id=task_id, project_id=project_id, language=language, at=at,
            duration=time.monotonic() - t0, error=error, usage=usage or ResourceUsage(),
        )
        for observer in self.observers:
            try:
                observer.on_lifecycle(event)
            except Exception:
                log.exception("observer %r failed on a lifecycle event", observer)


class _TooBig(Exception):
    pass


class Sandbox:
    """A task's container, as handed out by `manager.task(...)`."""

    def __init__(self, manager: ContainerManager, task_id: str) -> None:
        self.manager = manager
        self.task_id = task_id

    @property
    def info(self) -> ContainerInfo:
        return self.manager._task(self.task_id).info

    async def exec(self, command: str, **kwargs: Any) -> ExecResult:
        return await self.manager.exec_command(self.task_id, command, **kwargs)

    def stream(self, command: str, **kwargs: Any) -> ExecStream:
        return self.manager.exec_stream(self.task_id, command, **kwargs)

    async def write_files(self, files: Mapping[str, str | bytes]) -> list[str]:
        return await self.manager.write_files(self.task_id, files)

    async def read_file(self, path: str) -> bytes:
        return await self.manager.read_file(self.task_id, path)


_instance: ContainerManager | None = None


def get_container_manager(config: RuntimeConfig | None = None, **overrides: Any) -> ContainerManager:
    """The process-wide manager, created on first call (config from arguments, THEAPPAPP_* env, defaults)."""
    global _instance
    wanted = config or (RuntimeConfig.load(**overrides) if overrides else None)
    if _instance is None:
        _instance = ContainerManager(wanted)
    elif wanted is not None and wanted != _instance.config:
        raise SandboxError("the process-wide manager already exists with another configuration")
    return _instance

