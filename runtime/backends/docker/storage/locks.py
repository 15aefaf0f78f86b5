"""One operation per volume at a time: an asyncio lock in this process, a file lock across processes.

The asyncio lock keeps a process's own tasks in line without tying up threads (two tasks of
one project creating at once: the second finds the volume mounted). The flock, taken by the
worker thread around the whole blocking operation, covers other processes on the same host
(a service and a `cleanup` run) and also a thread still running after its caller was cancelled.

A second flock per volume, its *use* lock, is shared: every create holds it from finding the
volume mounted until its container has started, and the idle sweep (`idle`) takes it exclusively,
without waiting, before it unmounts the volume. A separate file, because a create that holds it
may still need the operation lock to mount the volume (two flocks on one file from one process
would wait for each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from runtime.errors import EngineError

FLOCK_TIMEOUT = 120.0  # longer than any single operation's tools together

REPLACED_AT_MOST = 100  # times a lock file may be found replaced under a taker (a filesystem without stable inodes)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = FLOCK_TIMEOUT, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created if missing); yields False if `wait` is off and it is taken."""
    fd = take_flock(path, exclusive=True, wait=wait, timeout=timeout)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


def take_flock(path: Path, *, exclusive: bool, wait: bool, timeout: float = FLOCK_TIMEOUT) -> int | None:
    """An fd holding a flock on `path` (created if missing), to close to release it; None if `wait` is off
    and the lock is taken (exclusively, for a shared one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    for _ in range(REPLACED_AT_MOST):
        fd = _flock_file(path, exclusive, wait, deadline, timeout)
        if fd is None:
            return None
        try:
            if _still_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # deleted (`delete_held`) while we waited for it: the lock now is the file at `path`
    raise EngineError(f"{path.stem}'s lock file kept being replaced while it was taken")


def _still_at(fd: int, path: Path) -> bool:
    held = os.fstat(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def delete_held(*paths: Path, wait: float | None = None) -> list[Path]:
    """Delete lock files whose flocks the caller holds (a removed volume's, so that a host does not keep two
    for every project it ever had), unless another process has one open; the paths deleted. Returns once
    no other process has those open, at most `wait` seconds (default: longer than any waiter waits).

    A waiter that opened a file before it went would otherwise get its flock once the caller lets go,
    while the next comer locks a new file at the path: two holders. So a file open elsewhere (a waiter)
    is left for a later prune. One opened between that look and the unlink is waited for: a waiter of
    this version looks again while it waits and moves to the new file (`take_flock`); one of an older
    version waits on the deleted file until it gives up. The last thing done under the locks.
    (/proc shows this PID namespace and those below it: a process elsewhere, say a service in a container
    beside a host's `cleanup`, is not seen; of this version, it still moves to the new file by itself.)"""
    files = {}
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            found = os.stat(path)
            files[(found.st_dev, found.st_ino)] = path
    busy = opened_elsewhere(files) if files else set()
    deleted: dict[tuple[int, int], Path] = {}
    try:
        for key, path in files.items():
            if key not in busy:
                path.unlink(missing_ok=True)
                deleted[key] = path
    finally:
        _until_closed_elsewhere(deleted, FLOCK_TIMEOUT + 5.0 if wait is None else wait)
    return list(deleted.values())


def _until_closed_elsewhere(files: dict[tuple[int, int], Path], wait: float) -> None:
    deadline = time.monotonic() + wait
    clean = 0
    while files:
        if not opened_elsewhere(files):
            clean += 1
            if clean == 2:  # twice, a moment apart: an open under way during the first look shows in the second
                return
        elif time.monotonic() > deadline:
            log.warning("deleted lock files are still open in another process: left to it (%s)",
                        sorted(str(p) for p in files.values()))
            return
        else:
            clean = 0
        time.sleep(0.05)


def opened_elsewhere(files: dict[tuple[int, int], Path]) -> set[tuple[int, int]]:
    """Which of `files` ((st_dev, st_ino) -> path) another process has a descriptor on, in any mount
    namespace, as fuser(1) finds out: through /proc/<pid>/fd. Only links that name a file of the same name
    (deleted or not) are looked at (a stat): never a file elsewhere, which could be on a hung filesystem."""
    names = {path.name for path in files.values()}
    me = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:  # (this process's own waiters run this version)
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # ended, or not ours to see (without root: then neither are the lock files)
            continue
        for fd in fds:
            link = f"/proc/{pid}/fd/{fd}"
            try:
                if os.readlink(link).removesuffix(" (deleted)").rsplit("/", 1)[-1] not in names:
                    continue
                target = os.stat(link)
            except OSError:
                continue
            if (target.st_dev, target.st_ino) in files:
                found.add((target.st_dev, target.st_ino))
    return found


def forget(operation_lock: Path, use_lock: Path) -> None:
    """Delete a removed volume's lock files; the caller holds its operation lock. The use lock goes only if
    no create holds it (one still on its way with the volume keeps it). Best effort: a file left is logged."""
    try:
        use = take_flock(use_lock, exclusive=True, wait=False)
        if use is None:
            delete_held(operation_lock)
            return
        try:
            delete_held(use_lock, operation_lock)
        finally:
            os.close(use)
    except OSError as err:  # the volume itself is gone: its removal succeeded
        log.warning("the lock files of removed volume %s were left: %s", operation_lock.stem, err)


def _flock_file(path: Path, exclusive: bool, wait: bool, deadline: float, timeout: float) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                return fd
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    os.close(fd)
                    return None
                if time.monotonic() > deadline:
                    raise EngineError(f"{path.stem} stayed locked by another operation for {timeout:.0f}s") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                if not _still_at(fd, path):  # its holder deleted it (`delete_held`): wait for the new file
                    fd, stale = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600), fd
                    os.close(stale)
    except BaseException:
        os.close(fd)
        raise


class SharedWait:
    """A shared flock waited for in a worker thread (`run`), for a caller that may give up first
    (`abandon`): whichever of the two comes last closes the fd, so none is left holding the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._abandoned = False

    def run(self) -> None:
        fd = take_flock(self.path, exclusive=False, wait=True)
        assert fd is not None  # (waited for: an fd, or an error raised)
        with self._lock:
            if self._abandoned:
                os.close(fd)
            else:
                self._fd = fd

    def take(self) -> int:
        """The fd, once `run` returned."""
        with self._lock:
            fd, self._fd = self._fd, None
        assert fd is not None
        return fd

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def mark_used(path: Path) -> None:
    """Set the use file's mtime to now (made if missing): the volume counts as used from here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def last_used(path: Path) -> float | None:
    """The use file's mtime (time.time() scale), or None if it has none."""
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


class VolumeLocks:
    """Per-volume asyncio locks, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, names: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(names))  # one order for everyone: no deadlock
        async with contextlib.AsyncExitStack() as held:
            held.callback(self._drop, ordered)  # first in, so last out: after the locks are released
            for name in ordered:
                await held.enter_async_context(self._locks.setdefault(name, asyncio.Lock()))
            yield

    def _drop(self, names: list[str]) -> None:
        for name in names:
            lock = self._locks.get(name)
            if lock is not None and not lock.locked() and not getattr(lock, "_waiters", None):
                del self._locks[name]
