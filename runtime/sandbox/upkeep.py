"""The warm pool's upkeep: what runs while no task asks for anything.

Leases (a spare's agent ends it unless this process renews its lease), the idle TTL, spares
above a quiet key's target, the removals all of these start, and the sweep of this owner's
spares at shutdown or interpreter exit. `WarmPool` decides what to make and hand over; this
keeps what it made from outliving its use or its manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from runtime import labels
from runtime.backends.base import Backend
from runtime.sandbox.demand import Demand
from runtime.sandbox.owner import Owner
from runtime.sandbox.spares import SPARE, SPARE_PREFIX, Key, Spare, SpareShelf

log = logging.getLogger(__name__)
LEASE_SECONDS = 15.0  # a spare whose manager stopped renewing this long ends itself
RENEW_EVERY = LEASE_SECONDS / 3
SURPLUS_GRACE = 30.0  # seconds a quiet key keeps spares above its target


async def quietly(job: Coroutine[Any, Any, Any]) -> None:
    """Await `job`, ignoring its failure (cleanup finds by label what a failed call left)."""
    with contextlib.suppress(Exception):
        await job


class Upkeep:
    """Renews the shelf's leases, retires idle and surplus spares, and tracks the removals."""

    def __init__(self, backend: Backend, owner: Owner, shelf: SpareShelf, demand: Demand, idle_ttl: float,
                 count: Callable[[str, Key], None]) -> None:
        self.backend = backend
        self.owner = owner
        self.shelf = shelf
        self.demand = demand
        self.idle_ttl = idle_ttl
        self.count = count
        self.tender: asyncio.Task[None] | None = None
        self._removals: set[Future[None]] = set()
        self._stopped = False

    # -- removal -------------------------------------------------------------------------------

    def discard(self, spare: Spare) -> None:
        self.remove_soon(spare.container_id)

    def remove_soon(self, container_id: str) -> None:
        # If the engine is gone meanwhile, cleanup finds the spare by its labels.
        future = self.backend.remove_soon(container_id)
        self._removals.add(future)
        future.add_done_callback(self._removals.discard)

    async def settle(self) -> None:
        """Wait for the removals started so far."""
        if self._removals:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._removals)), return_exceptions=True)

    # -- tending -------------------------------------------------------------------------------

    def ensure_tending(self, spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        """Start the tending loop (with the pool's `spawn`) unless it runs; it stops when the shelf is empty."""
        if not self._stopped and (self.tender is None or self.tender.done()):
            self.tender = spawn(self._tend())

    def stop(self) -> None:
        self._stopped = True
        if self.tender is not None:
            self.tender.cancel()

    async def lease(self, spare: Spare) -> None:
        """The first lease of a spare just made."""
        if not await self.backend.lease(spare.container_id, LEASE_SECONDS):
            log.debug("spare %s has no agent to hold a lease; cleanup removes it if this process dies", spare.name)

    async def _tend(self) -> None:
        while not self._stopped and self.shelf.size:
            oldest = self.shelf.oldest()
            due = RENEW_EVERY if oldest is None else oldest + self.idle_ttl - time.monotonic()
            await asyncio.sleep(max(0.05, min(RENEW_EVERY, due)))
            self.expire()
            self.trim()
            await asyncio.gather(*(quietly(self.renew(s)) for s in self.shelf.all()))

    async def renew(self, spare: Spare) -> None:
        """Renew a spare's lease if it is still idle, asked at the send (`Backend.lease`'s `still`), not when
        the renewals were listed: a spare handed over in between has had its lease lifted (0), and a
        renewal after that would leave the task on a lease nobody renews. The hand-over's lift is sent
        after the spare left the shelf, so it is written after any renewal that saw it there."""
        await self.backend.lease(spare.container_id, LEASE_SECONDS, still=lambda: self.shelf.holds(spare))

    def expire(self) -> int:
        """Remove spares older than the idle TTL; returns how many went."""
        deadline = time.monotonic() - self.idle_ttl
        gone = self.shelf.take_where(lambda s: s.made_at < deadline)
        for spare in gone:
            self.discard(spare)
            self.count("expired", spare.key)
        return len(gone)

    def trim(self) -> int:
        """Remove a quiet key's spares above its target once they waited SURPLUS_GRACE."""
        now, gone = time.monotonic(), 0
        for key in list({s.key for s in self.shelf.all()}):
            extra = self.shelf.ready(key) - self.demand.target(key)
            if extra <= 0:
                continue
            old = [s for s in self.shelf.all() if s.key == key and now - s.made_at > SURPLUS_GRACE][:extra]
            for spare in self.shelf.take_where(lambda s, old=old: s in old):  # type: ignore[misc]
                self.discard(spare)
                self.count("surplus", key)
                gone += 1
        return gone

    # -- the end -------------------------------------------------------------------------------

    def _mine(self) -> dict[str, str | None]:
        return {labels.OWNER: self.owner.manager_id, labels.POOL: SPARE}

    async def sweep(self) -> None:
        """Remove idle spares of this owner the engine still has (a creation cut off by cancellation)."""
        try:
            found = await self.backend.list_containers(self._mine())
            idle = [c.id for c in found if c.name.startswith(SPARE_PREFIX)]
            await asyncio.gather(*(self.backend.remove(cid) for cid in idle))
        except Exception as err:  # cleanup removes what is left by its labels
            log.warning("could not sweep the pool's spares: %s", err)

    def remove_all_now(self) -> None:
        """Remove this owner's idle spares, blocking (the interpreter is exiting: no loop to wait on)."""
        self._stopped = True
        with contextlib.suppress(Exception):
            self.backend.remove_now(self._mine(), SPARE_PREFIX)
