"""One operation per volume at a time: an asyncio lock in this process, a file lock across processes.

The asyncio lock keeps a process's own tasks in line without tying up threads (two tasks of
one project creating at once: the second finds the volume mounted). The flock, taken by the
worker thread around the whole blocking operation, covers other processes on the same host
(a service and a `cleanup` run) and also a thread still running after its caller was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from runtime.errors import EngineError

FLOCK_TIMEOUT = 120.0  # longer than any single operation's tools together


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = FLOCK_TIMEOUT, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created if missing); yields False if `wait` is off and it is taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    yield False
                    return
                if time.monotonic() > deadline:
                    raise EngineError(f"{path.stem} stayed locked by another operation for {timeout:.0f}s") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield True
    finally:
        os.close(fd)  # releases the flock


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
