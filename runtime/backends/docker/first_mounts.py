"""`FirstMounts`: the first containers to mount a volume are created one at a time.

Docker copies the image's files at a mount path into a volume that is still empty, when
it creates the container. Two creates racing on one new volume (a task and the warm
pool's spare for the same project, say) both copy, and one of them fails with "mkdir …:
file exists" (seen on engine 20.10 with the Go image's prewarmed build cache). Once a
create with the volume has succeeded, the copy is done and later creates run in
parallel again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable


class FirstMounts:
    """Per-volume locks, held only until a create with that volume has succeeded here."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._populated: set[str] = set()

    @contextlib.asynccontextmanager
    async def creating(self, volumes: Iterable[str]) -> AsyncIterator[None]:
        pending = sorted({name for name in volumes if name not in self._populated})  # one order: no deadlock
        async with contextlib.AsyncExitStack() as held:
            for name in pending:
                await held.enter_async_context(self._locks.setdefault(name, asyncio.Lock()))
            yield
            self._populated.update(pending)
        for name in pending:
            lock = self._locks.get(name)
            if lock is not None and not lock.locked():
                del self._locks[name]

    def forget(self, volume: str) -> None:
        """The volume was removed: a volume made again under its name is empty again."""
        self._populated.discard(volume)
