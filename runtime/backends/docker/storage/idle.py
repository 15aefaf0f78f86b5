"""Project filesystems nobody used lately are unmounted: every host mount slows every container.

Why: each container's mount namespace starts as a copy of the host's, so each mounted project
filesystem costs every sandbox's start and removal ~0.08 ms of host CPU (`benchmarks/bench_floor.py
--only mounts`). A host that kept every project it ever served mounted would start sandboxes slower
and slower as projects accumulate; unmounted when idle, the cost follows the projects in use. The
next create that needs one mounts it again (`DockerStorage.ensure`), in milliseconds.

Safe, whichever process runs it:
- A create holds its volumes' use locks (shared flocks, `locks`) from the check that finds them
  mounted until its container has started (Docker binds the mountpoint at start). The sweep takes a
  volume's use lock exclusively, without waiting, then its operation lock: never under a create,
  a snapshot or anything else on that volume, in any process.
- A volume some container holds (a running sandbox, a warm spare) stays: seen in the other mount
  namespaces first, and `Volumes.down` refuses it anyway (it mounts it back).
- A bare mountpoint is an immutable empty directory (`mounts`): a container that binds one anyway
  (a stopped container started again by hand) cannot write there.

`unmount_idle` is blocking (a worker thread only); `Sweeper` runs it in a thread of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.storage import commands, mounts
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import delete_held, file_lock, last_used, take_flock
from runtime.backends.docker.storage.pool import Pool
from runtime.backends.docker.storage.volumes import Volumes
from runtime.errors import SandboxError

log = logging.getLogger(__name__)
# Every container that starts copies the host's mounts into its new mount namespace and holds them
# until its root is switched (milliseconds): on a busy host a volume nobody uses can look held for a
# moment. So the unmount asks again for this long before the volume counts as in use; a create of
# that project meanwhile waits for its use lock (the mountpoint is bare), no longer.
SWEEP_GRACE = 0.5
SWEEP_EVERY = 60.0  # seconds between two background sweeps, started by creates
PRUNE_AT_MOST = 200  # removed volumes whose lock files one sweep deletes (a host's backlog goes over a few)
PRUNE_BATCH = 32  # volumes whose locks are held at once, for one look at which files other processes have open
SWEEP_JOIN = 30.0  # seconds `Sweeper.close` waits for a sweep to stop (one volume's unmount, tool timeouts aside)


def unmount_idle(layout: Layout, volumes: Volumes, idle: float, stop: threading.Event | None = None) -> list[str]:
    """Unmount and detach every volume mounted here that nothing used for `idle` seconds and that no
    container or operation holds now; the names unmounted. Never waits for a lock (a volume a container
    holds is asked about again for `SWEEP_GRACE` at most, see there); stops early
    once `stop` is set (between two volumes)."""
    held: set[tuple[int, int]] | None = None  # what other mount namespaces hold: read once, if needed
    gone = []
    for name in layout.volume_names():
        if stop is not None and stop.is_set():
            break
        try:
            device = mounts.mounted_device(layout.mountpoint(name))
            if device is None:
                continue
            seen = last_used(layout.in_use(name))
            # Mounted before use files existed: its image's last write stands in.
            if (seen if seen is not None else os.stat(layout.image(name)).st_mtime) > time.time() - idle:
                continue
            if held is None:
                held = mounts.devices_in_other_namespaces()
            if (os.major(device), os.minor(device)) in held:
                log.debug("idle volume %s stays: a container holds it", name)
                continue
            if _unmount_if_free(layout, volumes, name, seen):
                gone.append(name)
        except (SandboxError, OSError) as err:  # removed meanwhile, a tool that failed: the next one
            log.warning("idle volume %s was left mounted: %s", name, err)
    return gone


def _unmount_if_free(layout: Layout, volumes: Volumes, name: str, seen: float | None) -> bool:
    """Unmount the volume if no create and no operation holds it, and it was not used since `seen` (None:
    it had no use file, and taking its lock makes one)."""
    if seen is None and layout.in_use(name).exists():
        return False  # a create made it since the first look: used
    with file_lock(layout.in_use(name), wait=False) as unused:  # no create is using it
        if not unused:
            log.debug("idle volume %s stays: a create is using it", name)
            return False
        with file_lock(layout.lock(name), wait=False) as free:  # no other operation on it
            if free and not layout.image(name).exists():  # removed since the first look: taking its locks
                delete_held(layout.in_use(name), layout.lock(name))  # made them again
                return False
            # Used between the first look and the locks (a create that came and went): not idle after all.
            if not free or (seen is not None and last_used(layout.in_use(name)) != seen):
                log.debug("idle volume %s stays: %s", name, "used meanwhile" if free else "an operation holds it")
                return False
            image = layout.image(name)
            if seen is None:  # the use file just made: dated by the image's last write (no create can touch
                written = os.stat(image).st_mtime  # it while the sweep holds its lock)
                os.utime(layout.in_use(name), (written, written))
            # A snapshot's process killed mid-way leaves its volume frozen, where a flush would hang.
            mounts.thaw_if_frozen(layout.mountpoint(name))
            # What the project wrote reaches the image first (its mtime: retention's last write); then
            # the unmount's own write, XFS's unmount record, is not counted as one.
            commands.run(commands.flush(layout.mountpoint(name)))
            before = os.stat(image)
            try:
                volumes.down(name, grace=SWEEP_GRACE)  # a container holds it: mounted back, ResourceInUse
            except ResourceInUse as err:
                log.debug("idle volume %s stays: %s", name, err)
                return False
            os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
            return True


def prune_lock_files(layout: Layout, stop: threading.Event | None = None, at_most: int = PRUNE_AT_MOST,
                     idle: float = 0.0) -> int:
    """Delete the lock files of up to `at_most` volumes that are gone (removed before removals took them
    along, or whose files a later look made again) and were not used for `idle` seconds (a plain volume,
    without a filesystem of its own, has lock files too), each under both its locks, taken without waiting:
    one that anything holds or waits for stays. The number of volumes whose files went."""
    if not Pool(layout, None).mounted():  # (no pool mounted: no volume's image can be seen to be gone)
        return 0
    have = set(layout.volume_names())
    cutoff = time.time() - idle
    candidates = [n for n in layout.locked_volumes()
                  if n not in have and (last_used(layout.in_use(n)) or 0.0) <= cutoff][:at_most]
    pruned = 0
    batch: list[tuple[str, contextlib.ExitStack]] = []

    def delete_batch() -> None:
        nonlocal pruned
        try:
            if batch and not (stop is not None and stop.is_set()):
                gone = delete_held(*(path for name, _ in batch for path in (layout.in_use(name), layout.lock(name))))
                pruned += len({path.stem for path in gone})
        except OSError as err:  # (one that cannot go must not stop the prune of every later name for good)
            log.warning("lock files of removed volumes were left: %s", err)
        finally:
            for _, held in batch:
                held.close()  # after the files went (see `delete_held`)
            batch.clear()

    try:
        for name in candidates:
            if stop is not None and stop.is_set():
                break
            try:
                held = _both_locks(layout, name)
            except OSError as err:  # (a directory by that name, a file not ours: the next one)
                log.warning("lock files of removed volume %s were left: %s", name, err)
                continue
            if held is None:
                continue
            if layout.image(name).exists():  # made since the first look: a volume after all
                held.close()
                continue
            batch.append((name, held))
            if len(batch) >= PRUNE_BATCH:
                delete_batch()
        delete_batch()
    finally:
        for _, held in batch:  # (an error on the way: nothing deleted, everything let go)
            held.close()
    return pruned


def _both_locks(layout: Layout, name: str) -> contextlib.ExitStack | None:
    """The volume's use and operation locks, in the sweep's order (no deadlock with it), taken without
    waiting; to close to let go. None if either is held (nothing kept)."""
    held = contextlib.ExitStack()
    try:
        for path in (layout.in_use(name), layout.lock(name)):
            fd = take_flock(path, exclusive=True, wait=False)
            if fd is None:
                held.close()
                return None
            held.callback(os.close, fd)
    except BaseException:
        held.close()
        raise
    return held


class Sweeper:
    """The background sweep of one storage: at most one at a time and one a minute, in a daemon thread,
    stopped between two volumes by `close` (a process that exits mid-unmount would leave a volume a
    container holds unmounted here, until its next create mounts it again)."""

    def __init__(self, layout: Layout, volumes: Volumes, idle: float) -> None:
        self.layout, self.volumes, self.idle = layout, volumes, idle  # idle 0: never
        self.thread: threading.Thread | None = None
        self.last = -SWEEP_EVERY  # time.monotonic() of the latest start
        self._running = threading.Lock()
        self._stop = threading.Event()

    def soon(self) -> None:
        """Start a sweep unless one ran lately or is running (a few reads on the caller's thread)."""
        if self.idle <= 0 or time.monotonic() - self.last < SWEEP_EVERY:
            return
        if not self._running.acquire(blocking=False):
            return
        self.last = time.monotonic()
        try:
            self._stop = threading.Event()  # one per sweep: one that close() could not stop stays asked to
            self.thread = threading.Thread(target=self._run, args=(self._stop,), name="theappapp-idle-volumes",
                                           daemon=True)
            self.thread.start()
        except BaseException:
            self._running.release()
            raise

    def _run(self, stop: threading.Event) -> None:
        try:
            gone = unmount_idle(self.layout, self.volumes, self.idle, stop)
            if gone:
                log.info("unmounted %d project filesystems idle for %.0f s or more", len(gone), self.idle)
            pruned = prune_lock_files(self.layout, stop, idle=self.idle)
            if pruned:
                log.info("deleted the lock files of %d removed volumes", pruned)
        except Exception as err:  # a sweep that fails leaves volumes mounted, nothing worse: said, never raised
            log.warning("sweep for idle volumes failed: %s", err)
        finally:
            self._running.release()

    def close(self) -> None:
        """Stop a sweep under way after the volume it is at (blocking, seconds at most)."""
        self._stop.set()
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(SWEEP_JOIN)
