"""Warm pool: fresh, never-used containers per (project, language) that `create_container` hands over.

A cold task start pays a create + start and the agent's greeting (~0.3-0.4 s here) before its
first command; a spare pays it ahead, in the background, and a warm start then takes ~8 ms to
first output. The project volume is mounted at creation, so spares are keyed by (project,
language). A spare serves exactly one task: it leaves the pool synchronously, before any await,
so two concurrent creates can never both get it, and it is removed with its task.

Identity. A spare carries what is known when it is made (managed, project, language, owner,
installation, expiry, `pool=spare`, no task) under the name `theappapp_spare-…`; at hand-over it
is renamed to the task's `theappapp-{project}-{task}` (in the background: see `take`). A
`pool=spare` container whose name still has the spare prefix is idle; a renamed one serves a task.

Freshness. A spare is handed out only if its image is still the one its tag names.

Policy (measured in benchmarks/bench_pool.py, `--only workloads throughput idle`):
- Pipelining: a hand-over starts the key's next spare at once, not gated by engine load: it
  replaces the spare just used, so a stream of tasks on one key overlaps each task with the
  making of the next one's container. Only where the key's tasks come slower than a spare is
  made, with time to spare (`Demand.unhurried`), does the replacement wait `REPLACEMENT_DELAY`,
  so the task's first command (usually sent at once) has the host's cores before the engine's
  create does; a task of the key arriving meanwhile starts it at once. How many are kept on
  their way adapts to demand (`Demand.target`): as many as arrive while one is being made
  (the time between arrivals counted without their waits for a container, so back-to-back
  tasks count as fast ones), up to `pool_max_per_key`; beyond the replacement, only until
  `pool_max_making` spares are being made in all and into free room (no eviction); back to
  `pool_spares_per_key` once the key's tasks stop.
- Speculative refills (after each of a task's commands, and when it ends) start only
  while the engine has spare capacity (`pool_fill_max_load` creates and starts in flight; the
  manager's own removals do not count): on a saturated engine a spare would only compete with
  the tasks it was made for.
- Eviction: at the global cap, a prewarm and a hand-over's replacement remove the idle spares
  of other keys, speculative keys (one task or none) first, then the least recently used.
- Lifetime: spares hold a lease from their agent's start, which the agent keeps only while this
  process renews it (every few seconds): a manager killed outright, even while a spare was
  starting, leaves spares that stop themselves within `LEASE_SECONDS`; at a normal interpreter
  exit they are removed (`atexit`). An idle spare is removed after `pool_idle_ttl`, and spares
  above a quiet key's target sooner.

Every decision is counted (`counts`, and `on_event` for the monitor): hit, miss, waited, made,
stale, failed, expired, evicted, surplus, and why a spare was not made (busy, cap, no_memory).
Every pool failure is answered with `None`, i.e. a cold create: the pool never fails a task.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from runtime.backends.base import Backend
from runtime.config import RuntimeConfig
from runtime.registry import Registry
from runtime.sandbox.demand import Demand
from runtime.sandbox.owner import Owner
from runtime.sandbox.spare_maker import SpareMaker
from runtime.sandbox.spares import SPARE, SPARE_PREFIX, Key, Spare, SpareShelf, Waiters, mem_available
from runtime.sandbox.supply import SpareSupply
from runtime.sandbox.upkeep import LEASE_SECONDS, Upkeep, quietly

__all__ = ["LEASE_SECONDS", "SPARE", "SPARE_PREFIX", "Handover", "Spare", "WarmPool", "mem_available"]

log = logging.getLogger(__name__)

# How long the replacement of an unhurried key's spare waits after its hand-over (a spare takes ~0.2 s to
# make; a key is unhurried when its tasks come at least that plus this delay apart). First output of
# python3 -c 'print(1)', tasks 0.5 s apart: p50 17.9 -> 15.6 and 14.9 -> 12.8 ms with the two policies
# taking turns task by task in one run; 18.5, 18.7 -> 14.2, 16.6 ms in bench_pool runs taking turns.
REPLACEMENT_DELAY = 0.1


@dataclass(frozen=True)
class Handover:
    """A spare given to a task: its container, and the rename to the task's name, still under way."""

    container_id: str
    renamed: asyncio.Future[None]


class WarmPool:
    """Spares per (project, language), bounded, made ahead and evicted by demand."""

    def __init__(self, backend: Backend, config: RuntimeConfig, owner: Owner, registry: Registry, network: str,
                 on_event: Callable[[str, Key], None] | None = None) -> None:
        self.backend = backend
        self.config = config
        self.settings = config.pool
        self.owner = owner
        self.network = network
        self.on_event = on_event
        self.demand = Demand(self.settings.spares_per_key, self.settings.max_per_key)
        self.counts: Counter[str] = Counter()
        self._shelf = SpareShelf()
        self._waiters = Waiters()  # creates waiting for a spare in the making
        self._tickets: dict[str, tuple[Key, int]] = {}  # a create's name -> its arrival, until `served`
        self._jobs: set[asyncio.Task[Any]] = set()
        self._delayed: dict[Key, asyncio.Task[None]] = {}  # replacements waiting out REPLACEMENT_DELAY
        self.upkeep = Upkeep(backend, owner, self._shelf, self.demand, self.settings.idle_ttl, self._count)
        self._discard = self.upkeep.discard
        self.supply = SpareSupply(backend, self.settings, SpareMaker(backend, config, owner, registry, network),
                                  self._shelf, self._waiters, self.demand, self.upkeep, self._count)
        self._making = self.supply.making  # the same Counter: what is reserved or being made, per key
        atexit.register(self._at_exit)

    @property
    def maker(self) -> SpareMaker:
        return self.supply.maker

    @property
    def last_miss_reason(self) -> dict[Key, str]:
        """Why each key last got no spare made."""
        return self.supply.last_miss_reason

    def _count(self, kind: str, key: Key) -> None:
        self.counts[kind] += 1
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # accounting never breaks the pool
                self.on_event(kind, key)

    # -- what is in the pool -----------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._shelf.size

    def ready(self, project_id: str, language: str) -> int:
        return self._shelf.ready((project_id, language))

    def spares(self) -> list[Spare]:
        return self._shelf.all()

    def stats(self) -> dict[str, int]:
        """The counters, and what is ready and in the making now."""
        return {**self.counts, "ready": self.size, "making": sum(self._making.values())}

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
        unanswered = self._tickets.pop(name, None)  # a create of the same name racing this one
        if unanswered is not None:
            self.demand.served(*unanswered, None)
        self._tickets[name] = (key, self.demand.arrived(key))
        if network == self.network:  # a replacement still waiting starts now: this task may wait for it
            self._replace_now(key)
        spare = self._shelf.pop(key, network, self.settings.idle_ttl) or await self._wait_for_spare(key, network)
        # No refill on a miss: it would race the cold create that follows for the engine (measured:
        # 1.22x raw for a new project's first task). The task's commands refill its key.
        if spare is None:
            self._count("miss", key)
            return None
        problem = await self._check(spare, image)
        if problem:
            log.warning("spare %s not handed over, creating cold instead: %s", spare.name, problem)
            self._discard(spare)
            return None
        self._count("hit", key)
        self._spawn(quietly(self.backend.lease(spare.container_id, 0)))  # a task outlives its manager
        self._replace(key)
        return Handover(spare.container_id, asyncio.ensure_future(self.backend.rename(spare.container_id, name)))

    async def _check(self, spare: Spare, image: str) -> str:
        """Why the spare must not be handed over ("" if it may)."""
        try:
            record = await self.backend.image(image)
            current = record.id if record is not None else None
            if current != spare.image_id:
                # The tag was rebuilt since the spare was made: never hand out the old image.
                self._count("stale", spare.key)
                if current is not None:
                    self._drop_stale(spare.key[1], current)
                return f"its image is older than the one tagged {image}"
            if self.backend.known_running(spare.container_id):
                return ""
            state = await self.backend.inspect(spare.container_id)
        except asyncio.CancelledError:
            self._discard(spare)
            raise
        except Exception as err:  # the engine could not say: a cold create decides
            self._count("failed", spare.key)
            return str(err)
        if state is None or not state.running:
            self._count("failed", spare.key)
            return f"it is not running ({state.status if state else 'gone'})"
        return ""

    async def _wait_for_spare(self, key: Key, network: str) -> Spare | None:
        """No spare ready, but one is being made that no other create waits for: it beats a cold create."""
        if network != self.network or self._making[key] <= self._waiters.waiting(key):
            return None
        spare = await self._waiters.wait(key, self.config.engine.api_timeout, self._discard)
        if spare is not None:
            self._count("waited", key)
        return spare

    def _drop_stale(self, language: str, image_id: str) -> None:
        for spare in self._shelf.take_where(lambda s: s.key[1] == language and s.image_id != image_id):
            self._discard(spare)

    # -- making spares (reserved and made in supply.py) ---------------------------------------

    def refill(self, project_id: str, language: str) -> None:
        """A task of the key started or ended: bring it back to its target, with spare engine capacity only."""
        self._replenish((project_id, language), hit=False)

    def served(self, name: str, waited: float | None) -> None:
        """The create that `take` was asked for as `name` got its container, warm or cold, `waited`
        seconds after it asked (None: it got none). Every `take` is answered by one call of this."""
        ticket = self._tickets.pop(name, None)
        if ticket is not None:
            self.demand.served(ticket[0], ticket[1], waited)

    def _replace(self, key: Key) -> None:
        """The hand-over's replacement: at once, or after REPLACEMENT_DELAY for an unhurried key."""
        if not self.demand.unhurried(key, REPLACEMENT_DELAY):
            self._replenish(key, hit=True)
            return
        if self.supply.closed or key[0] in self.supply.dropping:
            return  # (as `reserve` would refuse it: nothing may start after a drop or a shutdown)
        self._replace_now(key)  # another hand-over's, still waiting: the key's tasks came fast after all
        self._delayed[key] = self._spawn(self._replace_later(key))

    async def _replace_later(self, key: Key) -> None:
        await asyncio.sleep(REPLACEMENT_DELAY)
        if self._delayed.get(key) is asyncio.current_task():
            del self._delayed[key]
            self._replenish(key, hit=True)

    def _replace_now(self, key: Key) -> None:
        """Start the key's delayed replacement now, if one waits: also one whose event loop ended first."""
        waiting = self._delayed.pop(key, None)
        if waiting is not None:
            waiting.cancel()
            self._replenish(key, hit=True)

    def _cancel_delayed(self, project_id: str | None = None) -> None:
        """Delayed replacements (of one project) are not made after all."""
        for key in [k for k in self._delayed if project_id is None or k[0] == project_id]:
            self._delayed.pop(key).cancel()

    def _replenish(self, key: Key, *, hit: bool) -> None:
        """A hand-over's replacement is made at once (and may evict), a deeper pipeline into free room;
        anything else only with spare engine capacity."""
        want = self.demand.target(key)
        if not hit:
            n = self.supply.reserve(key, want, gated=True, evict=False)
        else:
            have = self._shelf.ready(key) + self._making[key]
            n = self.supply.reserve(key, min(want, have + 1), gated=False, evict=True)
            # A deeper pipeline tops the spares being made in all up to pool_max_making, into free
            # room only: on a saturated engine more in flight would come no sooner, only crowd out
            # task starts, and another key's ready spare is worth more than one more on its way.
            room = max(0, self.settings.max_making - self._making.total())
            if room and want > have + n:
                n += self.supply.reserve(key, min(want, have + n + room), gated=False, evict=False)
        if n:
            try:
                self._spawn(self.supply.fill(key, n, self._spawn))
            except RuntimeError:  # no running event loop: nothing to refill in
                self._making[key] -= n

    async def prewarm(self, project_id: str, language: str, count: int) -> int:
        """Make spares until the key has `count` (capped, evicting others' if the pool is full); how many
        are ready when those (and any already in the making for it) are done. Less than asked is logged."""
        key = (project_id, language)
        self.demand.touched(key)
        want = min(count, self.settings.max_per_key)
        n = self.supply.reserve(key, want, gated=False, evict=True)
        if n:
            await self.supply.fill(key, n, self._spawn)
        deadline = time.monotonic() + self.config.engine.api_timeout
        while self._making[key] and self.ready(*key) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # made by a refill that started before this call
        ready = self.ready(*key)
        if ready < want:
            log.info("prewarm of %s, %s: %d of %d ready (%s)", project_id, language, ready, want,
                     self.last_miss_reason.get(key, "none could be made"))
        return ready

    def load(self) -> int:
        """Creates and starts in flight in this process, plus spares being made (counted whole)."""
        return self.supply.load()

    def expire(self) -> int:
        """Remove spares older than the idle TTL; returns how many went."""
        return self.upkeep.expire()

    def trim(self) -> int:
        """Remove a quiet key's spares above its target once they waited long enough."""
        return self.upkeep.trim()

    # -- removal -------------------------------------------------------------------------------

    async def drop(self, project_id: str) -> int:
        """Remove the project's spares and wait until they are gone (e.g. before its volume is deleted).

        Spares still being made are waited for (up to the engine deadline) and removed too:
        once made, each would hold the project's volumes. No new ones are started meanwhile.
        """
        gone = 0
        self.supply.dropping.add(project_id)
        self._cancel_delayed(project_id)  # (and `_replace` adds none while the project is dropped)
        try:
            deadline = time.monotonic() + self.config.engine.api_timeout
            while True:
                for spare in self._shelf.take_where(lambda s: s.key[0] == project_id):
                    self._discard(spare)
                    gone += 1
                if not self.supply.making_for(project_id) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)  # a create + start takes ~0.2 s; polling keeps _fill unaware of drops
            await self.settle()
        finally:
            self.supply.dropping.discard(project_id)
        return gone

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return task

    async def shutdown(self) -> None:
        """Remove every spare: those in the pool, those being made, and any this owner leaked before."""
        self.supply.closed = True
        atexit.unregister(self._at_exit)
        self._cancel_delayed()
        self.upkeep.stop()
        # Spares being made are awaited, not cancelled: the engine would finish creating them anyway.
        jobs = [j for j in self._jobs if j is not self.upkeep.tender]
        if jobs:
            await asyncio.wait(jobs, timeout=self.config.engine.api_timeout)
        for spare in self._shelf.take_where(lambda s: True):
            self._discard(spare)
        self._waiters.release_all()
        await self.settle()
        await self.upkeep.sweep()

    async def settle(self) -> None:
        """Wait for the removals the pool has started."""
        await self.upkeep.settle()

    async def quiesce(self) -> None:
        """Wait until no spare is being made and no removal is in flight (benchmarks compare an idle engine)."""
        while self._making.total() or self._jobs - {self.upkeep.tender}:
            await asyncio.sleep(0.005)
        await self.settle()

    def _at_exit(self) -> None:
        """The interpreter exits without shutdown(): remove this owner's idle spares now, blocking."""
        if self.supply.closed:
            return
        self.supply.closed = True
        self.upkeep.remove_all_now()
