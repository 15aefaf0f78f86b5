"""What the warm pool holds: idle spares by (project, language), and creates waiting for one in the making."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SPARE_PREFIX = "theappapp_spare-"
SPARE = "spare"  # value of labels.POOL
MEMINFO = Path("/proc/meminfo")
Key = tuple[str, str]  # (project_id, language name)


@dataclass(frozen=True)
class Spare:
    container_id: str
    name: str
    key: Key
    network: str
    image_id: str  # the image the container was created from, as an id
    made_at: float  # time.monotonic()


def mem_available(meminfo: Path = MEMINFO) -> int | None:
    """The host's MemAvailable in bytes, or None where it cannot be read (not Linux).

    This is the memory of the host the runtime runs on; with a remote engine it is
    a proxy at best, and the pool's caps are what bounds it.
    """
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class SpareShelf:
    """Idle spares by key, oldest first. Taking one out is synchronous: two creates never get the same."""

    def __init__(self) -> None:
        self._by_key: dict[Key, list[Spare]] = {}

    @property
    def size(self) -> int:
        return sum(len(s) for s in self._by_key.values())

    def ready(self, key: Key) -> int:
        return len(self._by_key.get(key, ()))

    def all(self) -> list[Spare]:
        return [s for queue in self._by_key.values() for s in queue]

    def holds(self, spare: Spare) -> bool:
        return spare in self._by_key.get(spare.key, ())

    def add(self, spare: Spare) -> None:
        self._by_key.setdefault(spare.key, []).append(spare)

    def put_back(self, spare: Spare) -> None:
        """Return an untouched spare to the front of its queue."""
        self._by_key.setdefault(spare.key, []).insert(0, spare)

    def pop(self, key: Key, network: str, ttl: float) -> Spare | None:
        """The oldest spare of the key on that network that has not outlived the idle TTL."""
        deadline = time.monotonic() - ttl
        queue = self._by_key.get(key) or []
        for i, spare in enumerate(queue):
            if spare.made_at >= deadline and spare.network == network:  # expired ones: the reaper's
                return queue.pop(i)
        return None

    def pop_oldest(self, key: Key) -> Spare | None:
        queue = self._by_key.get(key)
        return queue.pop(0) if queue else None

    def take_where(self, wanted: Callable[[Spare], bool]) -> list[Spare]:
        """Remove and return every spare `wanted` selects."""
        gone: list[Spare] = []
        for queue in self._by_key.values():
            for spare in [s for s in queue if wanted(s)]:
                queue.remove(spare)
                gone.append(spare)
        return gone

    def oldest(self) -> float | None:
        return min((s.made_at for s in self.all()), default=None)


class Waiters:
    """Creates waiting for a spare of their key that is still being made, first come first served."""

    def __init__(self) -> None:
        self._by_key: dict[Key, deque[asyncio.Future[Spare | None]]] = {}

    def waiting(self, key: Key) -> int:
        return sum(not w.done() for w in self._by_key.get(key, ()))

    async def wait(self, key: Key, timeout: float, discard: Callable[[Spare], None]) -> Spare | None:
        """The spare handed over within `timeout`, or None. Cancelled after a hand-over: the spare is discarded."""
        waiter: asyncio.Future[Spare | None] = asyncio.get_running_loop().create_future()
        self._by_key.setdefault(key, deque()).append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        except asyncio.CancelledError:
            got = waiter.result() if waiter.done() else None
            if got is not None:
                discard(got)
            waiter.cancel()
            raise
        if not waiter.done():
            waiter.cancel()
            return None
        return waiter.result()

    def hand(self, key: Key, spare: Spare | None) -> bool:
        """Give a spare just made (or None: it failed) to the first create still waiting for the key."""
        waiters = self._by_key.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(spare)
                return True
        return False

    def release_all(self) -> None:
        for key in list(self._by_key):
            while self.hand(key, None):
                pass
