"""How the warm pool gets its spares: reserving room for them, evicting to make room, making them.

Split from the pool's hand-over (`pool.py`): a spare is first reserved (counted in `making`
under the caps and the engine-load gate), then made in the background, then either given to a
create waiting for it or put on the shelf. Every reservation is given back exactly once,
whatever ends the making (success, failure, cancellation, a pool closed meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from runtime.backends.base import Backend
from runtime.config import PoolSettings
from runtime.sandbox.demand import Demand
from runtime.sandbox.spare_maker import SpareMaker
from runtime.sandbox.spares import Key, SpareShelf, Waiters
from runtime.sandbox.upkeep import Upkeep

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class SpareSupply:
    """Reservations, eviction and the making of spares for one pool."""

    def __init__(self, backend: Backend, settings: PoolSettings, maker: SpareMaker, shelf: SpareShelf,
                 waiters: Waiters, demand: Demand, upkeep: Upkeep, count: Callable[[str, Key], None]) -> None:
        self.backend = backend
        self.settings = settings
        self.maker = maker
        self.making: Counter[Key] = Counter()
        self.last_miss_reason: dict[Key, str] = {}  # why the key last got no spare made
        self.closed = False  # set by the pool: nothing more is reserved, a spare made late is removed
        self.dropping: set[str] = set()  # projects whose spares are being dropped: none made meanwhile
        self._shelf = shelf
        self._waiters = waiters
        self._demand = demand
        self._upkeep = upkeep
        self._count = count

    def load(self) -> int:
        """Creates and starts in flight in this process, plus spares being made (counted whole)."""
        return self.backend.load() + self.making.total()

    def making_for(self, project_id: str) -> bool:
        return any(n for (project, _), n in self.making.items() if project == project_id)

    def reserve(self, key: Key, want: int, *, gated: bool, evict: bool) -> int:
        """Count in `making` the spares this key may still get (up to `want` in all); `fill` makes them."""
        if self.closed or key[0] in self.dropping:
            return 0
        need = want - self._shelf.ready(key) - self.making[key]
        if need <= 0:
            return 0
        making = self.making.total()
        if gated:
            if self.load() > self.settings.fill_max_load or making >= self.settings.max_making:
                # The engine is busy with task work: a spare made now would slow the tasks it competes
                # with, and under saturation it is the one that is never handed over (measured).
                return self.refuse(key, "busy")
            need = min(need, self.settings.max_making - making)
        room = self.settings.max_spares - self._shelf.size - making
        if room < need and evict:
            room += self._evict(key, need - room)
        n = max(0, min(need, room))
        if n < need:
            self.refuse(key, "cap")
        self.making[key] += n
        return n

    def refuse(self, key: Key, why: str) -> int:
        self._count(why, key)
        self.last_miss_reason[key] = why
        return 0

    def _evict(self, keep: Key, n: int) -> int:
        """Remove up to `n` idle spares of other keys (see `Demand.eviction_order`); how many went."""
        freed = 0
        holding = list({s.key for s in self._shelf.all()})
        for victim in self._demand.eviction_order(holding, keep):
            while freed < n and (spare := self._shelf.pop_oldest(victim)) is not None:
                self._upkeep.discard(spare)
                self._count("evicted", victim)
                freed += 1
            if freed >= n:
                break
        return freed

    async def fill(self, key: Key, n: int, spawn: Spawn) -> None:
        """Make the `n` spares reserved for the key, at once."""
        started = 0

        async def one() -> None:
            nonlocal started
            started += 1  # from here on, _make_one gives its reservation back itself
            await self._make_one(key, spawn)

        try:
            await asyncio.gather(*(one() for _ in range(n)))
        finally:
            # Cancelled before some makers ran (a prewarm cut off): give their reservations back,
            # and wake the creates that waited for those spares.
            for _ in range(n - started):
                self.making[key] -= 1
                self._waiters.hand(key, None)

    async def _make_one(self, key: Key, spawn: Spawn) -> None:
        t0 = time.monotonic()
        try:
            if not self.maker.memory_ok():
                self.refuse(key, "no_memory")
                self._waiters.hand(key, None)
                return
            spare = await self.maker.make(key, self._upkeep.remove_soon)
            try:
                await self._upkeep.lease(spare)
            except BaseException:  # made, but unusable (or cut off): it must not stay behind
                self._upkeep.discard(spare)
                raise
        except asyncio.CancelledError:
            self._waiters.hand(key, None)
            raise
        except Exception as err:  # a spare that cannot be made is a cold start later, nothing more
            self._count("failed", key)
            self.last_miss_reason[key] = f"making one failed: {err}"
            log.warning("could not make a spare for project %s, %s: %s", key[0], key[1], err)
            self._waiters.hand(key, None)
            return
        finally:
            self.making[key] -= 1
        if self.closed:
            self._upkeep.discard(spare)
            self._waiters.hand(key, None)
            return
        self._demand.made(time.monotonic() - t0)
        self._count("made", key)
        if not self._waiters.hand(key, spare):
            self._shelf.add(spare)
            self._upkeep.ensure_tending(spawn)
