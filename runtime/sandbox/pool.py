"""Warm pool: fresh, never-used containers per (project, language) that `create_container` hands over.

A cold task start pays a Docker create + start (~165 ms here) before its first command;
a spare pays it ahead, in the background. The project volume is mounted at creation, so
spares are keyed by (project, language). A spare serves exactly one task: it leaves the
pool synchronously, before any await, so two concurrent creates can never both get it,
and it is removed with its task like any other container.

Identity. Docker labels cannot change after creation, so a spare carries what is known
when it is made: managed, project, language, owner, installation, expiry and
`pool=spare` — and no task label. At hand-over it is renamed from `theappapp_spare-…`
to the task's name `theappapp-{project}-{task}`; from then on the task's identity lives
in that name and in the manager's records. So `pool=spare` means "made by the pool":
such a container whose name still starts with `SPARE_PREFIX` is idle, a renamed one
serves a task. (The '_' keeps the two name forms apart: no pair of ids makes `theappapp_`.)

Freshness. A spare is handed out only if the image it was created from is still the
image its tag names: after a rebuild the tag moves and older spares are dropped.

Refill. The manager refills a key after a task's command finishes and when a task ends,
not at create time: a spare being made competes for the CPU with the first command.
A create that finds no spare ready but one in the making waits for it (it was started
earlier, so it beats a cold create, and the engine does the work once).

Fill only with spare capacity. A refill starts only while this process has at most
`pool_fill_max_load` container creates, starts and removals in flight (the backend's `load()`; spares
being made count too); otherwise it is skipped (counted as `busy`) and the key's next
task start or end asks again. `prewarm` is the orchestrator's explicit call and is not
skipped. Why: on a saturated engine a spare saves a task nothing — it costs the same
create + start, plus an exclusive rename that drains the gate below — and a key's last
spare waits for a task that may never come. Measured on 2 cores (create -> exec -> destroy
loops against raw docker-py, same run): with a refill after every task, renames waited
0.16 s (4 tasks at once) to 2.4 s (16) for the gate while starts and removals queued
behind them, and throughput was 0.85-0.94x raw at 4, 8 and 16 concurrent tasks even
where nearly every spare was handed over; skipping refills under load makes no spare
there (0.98-1.11x raw, the manager's own overhead and noise), while one task at a time
still gets a spare for every start (1.14-1.17x raw).

Bounds: a global cap, a per-key cap, a cap on background creations at once, the fill
load limit above, an idle TTL, and the host's MemAvailable. Every pool failure is logged
and answered with `None`, i.e. a cold create: the pool never fails a task. `shutdown()`
removes every spare, including ones still being made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from runtime import labels
from runtime.backends.base import Backend
from runtime.config import RuntimeConfig
from runtime.registry import Registry
from runtime.sandbox.owner import Owner
from runtime.sandbox.spare_maker import SpareMaker
from runtime.sandbox.spares import SPARE, SPARE_PREFIX, Key, Spare, SpareShelf, Waiters, mem_available

__all__ = ["SPARE", "SPARE_PREFIX", "Handover", "Spare", "WarmPool", "mem_available"]

@dataclass(frozen=True)
class Handover:
    """A spare given to a task: its container, and the rename to the task's name, still under way."""

    container_id: str
    renamed: asyncio.Future[None]

log = logging.getLogger(__name__)

class WarmPool:
    """Spares per (project, language), bounded, refilled in the background."""

    def __init__(
        self,
        backend: Backend,
        config: RuntimeConfig,
        owner: Owner,
        registry: Registry,
        network: str,
    ) -> None:
        self.backend = backend
        self.config = config
        self.settings = config.pool
        self.owner = owner
        self.registry = registry
        self.network = network
        self.counts: Counter[str] = Counter()  # hit, miss, stale, failed, made, expired, no_memory
        self.maker = SpareMaker(backend, config, owner, registry, network)
        self._shelf = SpareShelf()
        self._making: Counter[Key] = Counter()
        self._dropping: set[str] = set()  # projects whose spares are being dropped: none made meanwhile
        self._waiters = Waiters()  # creates waiting for a spare in the making
        self._jobs: set[asyncio.Task[Any]] = set()
        self._removals: set[Future[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- what is in the pool -----------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._shelf.size

    def ready(self, project_id: str, language: str) -> int:
        return self._shelf.ready((project_id, language))

    def spares(self) -> list[Spare]:
        return self._shelf.all()

    # -- hand-over ---------------------------------------------------------------------------

    async def take(self, project_id: str, language: str, *, image: str, network: str, name: str) -> Handover | None:
        """A fresh spare for the task, being renamed `name`; None means: create the task's container cold.

        The hand-over asks the engine nothing it need not: the image check is answered from what
        the backend knows (Docker: kept until its image events say a tag moved), a spare the
        backend knows is running (its agent's channel is open) is not inspected, and the rename
        to the task's name runs in the background (`Handover.renamed`): on Docker 20.10 it takes
        ~11 ms, the whole budget of a warm start.
        """
        key = (project_id, language)
        spare = self._shelf.pop(key, network, self.settings.idle_ttl) or await self._wait_for_spare(key, network)
        if spare is None:
            self.counts["miss"] += 1
            return None
        try:
            current = await self._image_id(image)
            if current != spare.image_id:
                # The tag was rebuilt since the spare was made: never hand out the old image.
                self.counts["stale"] += 1
                if current is not None:
                    self._drop_stale(language, current)
                problem = f"its image is older than the one tagged {image}"
            elif self.backend.known_running(spare.container_id):
                problem = ""
            else:
                state = await self.backend.inspect(spare.container_id)
                if state is None or not state.running:
                    self.counts["failed"] += 1
                    problem = f"it is not running ({state.status if state else 'gone'})"
                else:
                    problem = ""
        except asyncio.CancelledError:
            self._discard(spare)
            raise
        except Exception as err:  # the engine could not say: a cold create decides
            self.counts["failed"] += 1
            problem = str(err)
        if problem:
            log.warning("spare %s not handed over, creating cold instead: %s", spare.name, problem)
            self._discard(spare)
            return None
        self.counts["hit"] += 1
        return Handover(spare.container_id, asyncio.ensure_future(self.backend.rename(spare.container_id, name)))

    async def _image_id(self, image: str) -> str | None:
        """The id the tag names now (a rebuild moves the tag); the backend may answer from what it knows."""
        record = await self.backend.image(image)
        return record.id if record is not None else None

    async def _wait_for_spare(self, key: Key, network: str) -> Spare | None:
        """No spare ready, but one is being made that no other create waits for: it beats a cold create."""
        if network != self.network or self._making[key] <= self._waiters.waiting(key):
            return None
        spare = await self._waiters.wait(key, self.config.engine.api_timeout, self._discard)
        if spare is not None:
            self.counts["waited"] += 1
        return spare

    def _drop_stale(self, language: str, image_id: str) -> None:
        for spare in self._shelf.take_where(lambda s: s.key[1] == language and s.image_id != image_id):
            self._discard(spare)

    # -- making spares -----------------------------------------------------------------------

    def refill(self, project_id: str, language: str) -> None:
        """In the background, bring the key back to `pool_spares_per_key` spares (a task started or ended)."""
        key = (project_id, language)
        n = self._reserve(key, self.settings.spares_per_key, background=True)
        if n:
            try:
                self._spawn(self._fill(key, n))
            except RuntimeError:  # no running event loop: nothing to refill in
                self._making[key] -= n

    async def prewarm(self, project_id: str, language: str, count: int) -> int:
        """Make spares until the key has `count` (capped); returns how many are ready now."""
        key = (project_id, language)
        n = self._reserve(key, min(count, self.settings.max_per_key))
        if n:
            await self._fill(key, n)
        return self.ready(project_id, language)

    def _reserve(self, key: Key, want: int, *, background: bool = False) -> int:
        """Count in `_making` the spares this key may still get; `_fill` makes them."""
        if self._closed or key[0] in self._dropping:
            return 0
        have = self._shelf.ready(key) + self._making[key]
        making = sum(self._making.values())
        room = self.settings.max_spares - self.size - making
        if background:  # refills only; an explicit prewarm is the orchestrator's call
            room = min(room, self.settings.max_making - making)
            if want > have and room > 0 and self.load() > self.settings.fill_max_load:
                # The engine is busy with task work: a spare made now would slow the tasks it competes
                # with, and under saturation it is the one that is never handed over (measured).
                self.counts["busy"] += 1
                return 0
        n = max(0, min(want - have, room))
        self._making[key] += n
        return n

    def load(self) -> int:
        """Creates, starts and removals in flight in this process, plus spares being made (counted whole)."""
        return self.backend.load() + sum(self._making.values())

    async def _fill(self, key: Key, n: int) -> None:
        started = 0

        async def one() -> None:
            nonlocal started
            started += 1  # from here on, _make_one gives its reservation back itself
            await self._make_one(key)

        try:
            await asyncio.gather(*(one() for _ in range(n)))
        finally:
            # Cancelled before some makers ran (a prewarm cut off): give their reservations back,
            # and wake the creates that waited for those spares.
            for _ in range(n - started):
                self._making[key] -= 1
                self._waiters.hand(key, None)

    async def _make_one(self, key: Key) -> None:
        try:
            if not self.maker.memory_ok():
                self.counts["no_memory"] += 1
                self._waiters.hand(key, None)
                return
            spare = await self.maker.make(key, self._remove_soon)
        except asyncio.CancelledError:
            self._waiters.hand(key, None)
            raise
        except Exception as err:  # a spare that cannot be made is a cold start later, nothing more
            self.counts["failed"] += 1
            log.warning("could not make a spare for project %s, %s: %s", key[0], key[1], err)
            self._waiters.hand(key, None)
            return
        finally:
            self._making[key] -= 1
        if self._closed:
            self._discard(spare)
            self._waiters.hand(key, None)
            return
        self.counts["made"] += 1
        if not self._waiters.hand(key, spare):
            self._shelf.add(spare)
            self._ensure_reaper()

    # -- removal and the idle TTL ----------------------------------------------------------------

    def _discard(self, spare: Spare) -> None:
        self._remove_soon(spare.container_id)

    def _remove_soon(self, container_id: str) -> None:
        # If the engine is gone meanwhile, cleanup finds the spare by its labels.
        future = self.backend.remove_soon(container_id)
        self._removals.add(future)
        future.add_done_callback(self._removals.discard)

    async def drop(self, project_id: str) -> int:
        """Remove the project's spares and wait until they are gone (e.g. before its volume is deleted).

        Spares still being made are waited for (up to the engine deadline) and removed too:
        once made, each would hold the project's volumes. No new ones are started meanwhile.
        """
        gone = 0
        self._dropping.add(project_id)
        try:
            deadline = time.monotonic() + self.config.engine.api_timeout
            while True:
                for spare in self._shelf.take_where(lambda s: s.key[0] == project_id):
                    self._discard(spare)
                    gone += 1
                making = any(n for (project, _), n in self._making.items() if project == project_id)
                if not making or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)  # a create + start takes ~0.2 s; polling keeps _fill unaware of drops
            await self.settle()
        finally:
            self._dropping.discard(project_id)
        return gone

    def expire(self) -> int:
        """Remove spares older than the idle TTL; returns how many went."""
        deadline = time.monotonic() - self.settings.idle_ttl
        gone = self._shelf.take_where(lambda s: s.made_at < deadline)
        for spare in gone:
            self._discard(spare)
        self.counts["expired"] += len(gone)
        return len(gone)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = self._spawn(self._reap())

    async def _reap(self) -> None:
        while not self._closed:
            oldest = self._shelf.oldest()
            if oldest is None:
                return  # restarted with the next spare
            await asyncio.sleep(max(0.05, oldest + self.settings.idle_ttl - time.monotonic()))
            self.expire()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return task

    async def shutdown(self) -> None:
        """Remove every spare: those in the pool, those being made, and any this owner leaked before."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        # Spares being made are awaited, not cancelled: the engine would finish creating them anyway.
        jobs = [j for j in self._jobs if j is not self._reaper]
        if jobs:
            await asyncio.wait(jobs, timeout=self.config.engine.api_timeout)
        for spare in self._shelf.take_where(lambda s: True):
            self._discard(spare)
        self._waiters.release_all()
        await self.settle()
        await self._sweep()

    async def settle(self) -> None:
        """Wait for the removals the pool has started."""
        if self._removals:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._removals)), return_exceptions=True)

    async def _sweep(self) -> None:
        """Remove idle spares of this owner the engine still has (a creation cut off by cancellation)."""
        mine: dict[str, str | None] = {labels.OWNER: self.owner.manager_id, labels.POOL: SPARE}
        try:
            found = await self.backend.list_containers(mine)
            idle = [c.id for c in found if c.name.startswith(SPARE_PREFIX)]
            await asyncio.gather(*(self.backend.remove(cid) for cid in idle))
        except Exception as err:  # cleanup removes what is left by its labels
            log.warning("could not sweep the pool's spares: %s", err)
