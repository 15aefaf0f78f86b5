"""`DockerStorage`: the `VolumeStorage` protocol on a local Docker engine, plus `ensure` for `create`.

The async face of the package. Every blocking step (tools, file IO, /proc) runs in a worker
thread, under the volume's asyncio lock (this process) and its flock (any process); docker-py
calls go through the backend's `Engine`. What each step does is in `volumes`, `snapshots` and
`pool`; what the Docker volume of a quota volume is, in `engine_volumes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from runtime.backends.base import Diagnosis
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.storage import engine_volumes, host, idle
from runtime.backends.docker.storage.engine_volumes import Device
from runtime.backends.docker.storage.layout import DEFAULT_ROOT, Layout, check_snapshot_id, check_volume_name
from runtime.backends.docker.storage.locks import SharedWait, VolumeLocks, file_lock, take_flock
from runtime.backends.docker.storage.pool import Pool
from runtime.backends.docker.storage.sizes import check_quota
from runtime.backends.docker.storage.snapshots import Snapshots
from runtime.backends.docker.storage.volumes import Mounted, Space, Volumes, space
from runtime.backends.storage import SnapshotRecord, StorageStatus, VolumeUsage
from runtime.errors import EngineError, InvalidRequest, SandboxError
from runtime.sandbox.spec import VolumeMount
from runtime.units import describe

T = TypeVar("T")
log = logging.getLogger(__name__)
# A plain volume is asked about again after this long: removed behind our back (not through
# `remove`), it is then made again as a quota volume.
PLAIN_RECHECK = 60.0
IDLE_UNMOUNT = 600.0  # default seconds unused after which a volume's filesystem is unmounted (idle.py)
MECHANISM = "a filesystem per project volume (XFS images on loop devices in a reflink pool), snapshots by reflink"


class DockerStorage:
    """Quota volumes for one Docker engine on this host, kept under `root`."""

    def __init__(self, engine: Callable[[], Engine], root: str = DEFAULT_ROOT, pool_size: int | None = None,
                 uid: int = 1000, gid: int = 1000, idle_unmount: float = IDLE_UNMOUNT) -> None:
        self._engine = engine  # the backend's live engine (it is made again after a close)
        self.layout = Layout.at(root)
        self._pool = Pool(self.layout, pool_size)
        self._volumes = Volumes(self.layout, uid, gid)
        self._snapshots = Snapshots(self.layout, self._volumes)
        self._locks = VolumeLocks()
        self._prepare_lock = threading.Lock()  # not asyncio's: a process-wide manager outlives loops
        self._enforced = False
        self._problems: tuple[str, ...] = ("storage not prepared yet",)
        self._mounted: dict[str, Mounted] = {}  # volumes mounted by this process, checked again on use
        self._plain: dict[str, float] = {}  # Docker volumes found plain (they stay so), and when
        self._unfilled: set[str] = set()  # volumes made here that no container has used yet (see `Device`)
        # The sweep for idle volumes (idle.py): in the background, started by creates; idle_unmount 0: none.
        self.sweeper = idle.Sweeper(self.layout, self._volumes, idle_unmount)

    # -- running blocking steps ---------------------------------------------------------------------

    def _locked(self, names: list[str], fn: Callable[..., T], *args: Any) -> T:
        with contextlib.ExitStack() as held:
            for name in sorted(set(names)):
                held.enter_context(file_lock(self.layout.lock(name)))
            try:
                return fn(*args)
            except SandboxError:
                raise
            except OSError as err:
                raise EngineError(f"storage of volume {', '.join(names)}: {err}") from err

    async def _run(self, names: list[str], fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread holding the volumes' flocks (the caller holds their asyncio locks)."""
        return await asyncio.to_thread(self._locked, names, fn, *args)

    async def _docker(self, fn: Callable[..., T], *args: Any) -> T:
        engine = self._engine()
        client = await engine.connect()
        return await engine.call(fn, client.api, *args)

    def _require(self) -> None:
        if not self._enforced:
            raise InvalidRequest("disk quotas are not enforced on this host: " + "; ".join(self._problems))

    # -- the protocol ---------------------------------------------------------------------------------

    @property
    def enforced(self) -> bool:
        return self._enforced

    async def prepare(self) -> StorageStatus:
        where = self._engine().where
        problems = await asyncio.to_thread(self._prepare, where)
        self._enforced, self._problems = not problems, tuple(problems)
        return StorageStatus(self._enforced, MECHANISM, self._problems)

    def _prepare(self, where: str) -> list[str]:
        with self._prepare_lock:
            problems = host.problems(where) or self._pool.up()
            if not problems:
                self._volumes.thaw_abandoned()
            return problems

    async def set_quota(self, volume: str, quota: int) -> int:
        check_volume_name(volume)
        quota = check_quota(quota)
        self._require()
        async with self._locks.hold([volume]):
            return await self._run([volume], self._volumes.grow, volume, quota)

    async def usage(self, volumes: list[str]) -> list[VolumeUsage]:
        found = []
        for name in volumes:
            check_volume_name(name)
            measured = await self._measure(name) if self._enforced else None
            if measured is not None:
                found.append(measured)
                continue
            attrs = await self._docker(engine_volumes.inspect, name)
            if attrs is not None:
                found.append(VolumeUsage(name, await asyncio.to_thread(engine_volumes.plain_usage, attrs), None))
        return found

    async def snapshot(self, volume: str, snapshot_id: str, labels: Mapping[str, str]) -> SnapshotRecord:
        check_volume_name(volume)
        check_snapshot_id(snapshot_id)
        self._require()
        async with self._locks.hold([volume]):
            return await self._run([volume], self._snapshots.take, volume, snapshot_id, dict(labels))

    async def snapshots(self, volume: str | None = None) -> list[SnapshotRecord]:
        if volume is not None:
            check_volume_name(volume)
        return await asyncio.to_thread(self._snapshots.list, volume)

    async def restore(self, volume: str, snapshot_id: str) -> None:
        check_volume_name(volume)
        check_snapshot_id(snapshot_id)
        self._require()
        async with self._locks.hold([volume]):
            self._mounted.pop(volume, None)
            self._mounted[volume] = await self._run([volume], self._restore, volume, snapshot_id)

    def _restore(self, volume: str, snapshot_id: str) -> Mounted:
        source = self._snapshots.image(volume, snapshot_id)
        quota = self._volumes.quota(volume) if self._volumes.exists(volume) else None
        self._volumes.down(volume)  # ResourceInUse while a container holds it
        return self._volumes.install(volume, source, quota)  # keeps the quota: grown if it was bigger

    async def clone(self, volume: str, snapshot_id: str | None, target: VolumeMount) -> None:
        check_volume_name(volume)
        check_volume_name(target.name)
        if snapshot_id is not None:
            check_snapshot_id(snapshot_id)
        if target.name == volume:
            raise InvalidRequest(f"a clone needs a new volume name, not its source's ({volume})")
        quota = None if target.quota is None else check_quota(target.quota)
        self._require()
        device = str(self.layout.mountpoint(target.name))
        async with self._locks.hold([volume, target.name]):
            if await self._docker(engine_volumes.inspect, target.name) is not None:
                raise InvalidRequest(f"volume {target.name} already exists")
            mounted = await self._run([volume, target.name], self._clone, volume, snapshot_id, target.name, quota)
            try:
                await self._docker(engine_volumes.create_bound, target.name, device, dict(target.labels))
            except BaseException:
                await self._run([target.name], self._volumes.remove, target.name)
                raise
            self._mounted[target.name] = mounted

    def _clone(self, volume: str, snapshot_id: str | None, target: str, quota: int | None) -> Mounted:
        if self._volumes.exists(target):
            raise InvalidRequest(f"volume {target} already exists (its filesystem does)")
        if snapshot_id is not None:
            return self._volumes.install(target, self._snapshots.image(volume, snapshot_id), quota)
        self._volumes.frozen_copy(volume, self.layout.temporary_image(target))
        return self._volumes.install(target, None, quota)

    async def delete_snapshot(self, volume: str, snapshot_id: str) -> bool:
        check_volume_name(volume)
        check_snapshot_id(snapshot_id)
        self._require()
        async with self._locks.hold([volume]):
            return await self._run([volume], self._snapshots.delete, volume, snapshot_id)

    async def remove(self, volume: str) -> bool:
        check_volume_name(volume)
        async with self._locks.hold([volume]):
            self._mounted.pop(volume, None)
            self._plain.pop(volume, None)
            if not await asyncio.to_thread(self._pool.mounted):
                if not self.layout.pool_image.exists():  # no pool here: nothing of ours to remove
                    return False
                # A pool not mounted yet (a reboot, no startup since) may hold the volume's files: they must
                # go now, or the next project of that name would get them.
                problems = await asyncio.to_thread(self._prepare, self._engine().where)
                if problems:
                    raise EngineError(f"cannot reach the storage pool to remove {volume}'s files: "
                                      + "; ".join(problems))
            return await self._run([volume], self._volumes.remove, volume)

    # -- for the Docker backend -------------------------------------------------------------------------

    async def ensure(self, volume: VolumeMount) -> str | None:
        """The host path to bind for this volume (its mounted filesystem), or None for a plain volume.

        A quota volume's filesystem is made on first use and mounted again after a reboot; later
        calls cost one stat, which also notices a mount that went away. A volume that already has a
        filesystem stays a quota volume whatever `volume.quota` says now; one that Docker already
        has without it (made before quotas were on) stays plain. None whenever quotas are not enforced.
        """
        if not self._enforced:
            return None
        quota = None if volume.quota is None else check_quota(volume.quota)
        name = volume.name
        cached = self._mounted.get(name)
        if cached is not None and await asyncio.to_thread(cached.still):
            return str(cached.path)
        if time.monotonic() - self._plain.get(name, -PLAIN_RECHECK) < PLAIN_RECHECK:
            return None
        async with self._locks.hold([name]):
            if quota is not None and not await asyncio.to_thread(self._volumes.exists, name):
                attrs = await self._docker(engine_volumes.inspect, name)
                if engine_volumes.kind(attrs, str(self.layout.mountpoint(name))) == "plain":
                    self._plain[name] = time.monotonic()
                    return None
            mounted = await self._run([name], self._volumes.up, name, quota)
            if mounted is None:
                return None
            if mounted.fresh:
                self._unfilled.add(name)
            self._mounted[name] = mounted
            return str(mounted.path)

    @contextlib.asynccontextmanager
    async def using(self, volumes: Sequence[VolumeMount]) -> AsyncIterator[dict[str, Device]]:
        """`devices` for the volumes, kept mounted while the block runs: a create starts its container in it
        (Docker binds the mountpoints at start). The idle sweep, in any process, leaves them alone meanwhile."""
        if not self._enforced:
            yield {}
            return
        with contextlib.ExitStack() as held:
            for name in sorted({volume.name for volume in volumes}):
                held.callback(os.close, await self._hold_use(name))
            self.sweeper.soon()
            yield await self.devices(volumes)

    async def _hold_use(self, name: str) -> int:
        """The fd of the volume's use lock, shared, its mtime now; waited for in a thread while a sweep has it."""
        path = self.layout.in_use(name)
        fd = take_flock(path, exclusive=False, wait=False)  # a few syscalls: on the loop, as `ensure`'s stat
        if fd is None:
            waiting = SharedWait(path)
            try:
                await asyncio.to_thread(waiting.run)  # (cancelled, the thread still runs: `abandon` covers it)
            except BaseException:
                waiting.abandon()
                raise
            fd = waiting.take()
        try:
            os.utime(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def close(self) -> None:
        """Stop a sweep under way (`idle.Sweeper.close`)."""
        self.sweeper.close()

    async def unmount_idle(self, idle_seconds: float | None = None) -> list[str]:
        """Unmount now the volumes unused for `idle_seconds` (default: the sweep's) that nothing holds;
        their names. What the background sweep does, waited for (tests, benchmarks)."""
        if not self._enforced:
            return []
        seconds = self.sweeper.idle if idle_seconds is None else idle_seconds
        return await asyncio.to_thread(idle.unmount_idle, self.layout, self._volumes, seconds, None)

    async def devices(self, volumes: Iterable[VolumeMount]) -> dict[str, Device]:
        """`ensure` for each volume: volume name -> how to bind it, for the quota volumes among them."""
        found = {}
        for volume in volumes:
            path = await self.ensure(volume)
            if path is not None:
                found[volume.name] = Device(path, direct=volume.name not in self._unfilled)
                self._unfilled.discard(volume.name)  # its first container fills it (Docker's copy-up)
        return found

    async def _measure(self, name: str) -> VolumeUsage | None:
        """The quota volume's usage (None: it has no filesystem), mounted if it was not (a look, not a use:
        the idle sweep takes it again). Measured where it is mounted, or under its locks (no sweep then)."""
        cached = self._mounted.get(name)
        if cached is not None:
            found = await asyncio.to_thread(self._measure_mounted, name, cached)
            if found is not None:
                return found
        async with self._locks.hold([name]):
            return await self._run([name], self._measure_now, name)

    def _measure_mounted(self, name: str, mounted: Mounted) -> VolumeUsage | None:
        """Its usage if its filesystem is the one mounted there (else None: a sweep or a removal took it).
        Measured through an open directory of it: that pins the filesystem for the look."""
        try:
            fd = os.open(mounted.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_dev != mounted.device:
                return None
            now = space(fd)
            # The image's mtime: the filesystem writes through to it (reads leave it alone: noatime).
            written = self.layout.image(name).stat().st_mtime
        except OSError:
            return None
        finally:
            os.close(fd)
        return VolumeUsage(name, now.used, now.size, written)

    def _measure_now(self, name: str) -> VolumeUsage | None:
        mounted = self._volumes.up(name, None, use=False)
        if mounted is None:
            return None
        self._mounted[name] = mounted
        return self._measure_mounted(name, mounted)

    async def diagnose(self) -> Diagnosis:
        """`doctor`'s line: can quotas be enforced here (checked, nothing made), and how full the pool is."""
        problems = await asyncio.to_thread(host.problems, self._engine().where)
        if problems:
            return Diagnosis("WARN", "disk quotas", "not enforced here, project volumes would be unbounded: "
                             + "; ".join(problems), "fix the above, or set THEAPPAPP_STORAGE_ENABLED=false")
        if not await asyncio.to_thread(self._pool.mounted):
            return Diagnosis("PASS", "disk quotas", f"can be enforced ({MECHANISM}); the pool at "
                             f"{self.layout.root} is made by the first manager's startup()")
        free = await asyncio.to_thread(self._pool.space)  # looking only: no prepare() needed
        detail = f"enforced ({MECHANISM}); pool {describe(free.used)} used of {describe(free.size)}"
        if free.size and free.used > 0.9 * free.size:
            return Diagnosis("WARN", "disk quotas", detail + ": nearly full, and every project then runs out",
                             "grow the pool (THEAPPAPP_STORAGE_POOL_SIZE, then a manager's startup)")
        return Diagnosis("PASS", "disk quotas", detail)

    async def grow_pool(self, size: int) -> int:
        """Grow the pool to `size` bytes, online; the size its filesystem now has."""
        self._require()
        return await asyncio.to_thread(self._pool.grow, size)

    async def pool_space(self) -> Space:
        """Used bytes and size of the pool's filesystem."""
        self._require()
        return await asyncio.to_thread(self._pool.space)


def remove_files_now(names: Iterable[str], root: str = DEFAULT_ROOT) -> list[str]:
    """The quota filesystems of volumes whose Docker volumes were removed through Docker itself (test and
    benchmark teardowns), unmounted and deleted; the names that had one. Blocking; each under its flock.
    One that cannot go (in use, not ours to remove: not root) is left, with a warning in the log.

    Removing the Docker volume alone leaves the filesystem mounted and its files kept (a quota volume's
    Docker definition may go missing: see `engine_volumes.driver_config`). Left there, every such mount
    is copied into every container's mount namespace: ~0.08 ms of host CPU per mount per container
    (`benchmarks/bench_floor.py --only mounts`), so a host with hundreds of them starts every sandbox slower.
    """
    layout = Layout.at(root)
    if os.geteuid() != 0 or not Pool(layout, None).mounted():
        return []  # (only root makes quota volumes: without root there are none of ours to remove)
    volumes = Volumes(layout, 0, 0)  # (uid and gid only matter for making a volume)
    removed = []
    for name in names:
        try:
            check_volume_name(name)
            with file_lock(layout.lock(name)):
                if volumes.remove(name):
                    removed.append(name)
        except (SandboxError, OSError) as err:
            log.warning("the quota filesystem of volume %s was left: %s", name, err)
    return removed
