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
`pool_fill_max_load` container creates, starts and removals in flight (`LOAD`; spares
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
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker.errors

from runtime import labels
from runtime.backends.docker.engine import Engine
from runtime.config import RuntimeConfig
from runtime.registry import Registry
from runtime.sandbox.naming import volume_name
from runtime.sandbox.owner import Owner
from runtime.sandbox.spec import ContainerSpec, project_cache

log = logging.getLogger(__name__)

SPARE_PREFIX = "theappapp_spare-"
SPARE = "spare"  # value of labels.POOL
MEMINFO = Path("/proc/meminfo")
Key = tuple[str, str]  # (project_id, language name)
T = TypeVar("T")


class EngineLoad:
    """Container creates, starts and removals of this process in flight (waiting at the gate included).

    The pool's measure of whether the engine has spare capacity: on a saturated engine a
    spare made in the background is not free, it delays the task starts it competes with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    @property
    def busy(self) -> int:
        return self._n

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._n += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._n -= 1


LOAD = EngineLoad()  # process-wide, like the gate: managers in one process share the engine


class EndpointGate:
    """Keeps renames apart from container starts and removals (a readers-writer lock, writers first).

    Docker 20.10's libnetwork keeps a persisted endpoint count per network, and loses
    updates to it under concurrent endpoint churn; a rename adds a write-back of a stale
    count (`endpoint.rename` -> `endpointCnt.updateStore`). Once the count drifts the
    network cannot be removed ("has active endpoints") until the daemon restarts. Measured
    here with 16 concurrent tasks: removal failed 3 runs in 3 with ungated renames, 1 in 7
    with this gate, 1 in 4 with the pool off. Starts and removals share the gate; a rename
    (~3 ms) takes it alone. It covers the containers of this process only.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._writers = 0  # renames waiting or running: new starts and removals wait behind them
        self._writing = False

    def shared_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result: T = LOAD.call(self._shared_call, fn, *args, **kwargs)  # every start and removal is engine load
        return result

    def _shared_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._cond:
            while self._writers:
                self._cond.wait()
            self._shared += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    def exclusive_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._cond:
            self._writers += 1
            while self._shared or self._writing:
                self._cond.wait()
            self._writing = True
        try:
            return fn(*args, **kwargs)
        finally:
            with self._cond:
                self._writing = False
                self._writers -= 1
                self._cond.notify_all()


GATE = EndpointGate()  # process-wide: managers in one process share networks


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


class WarmPool:
    """Spares per (project, language), bounded, refilled in the background."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        config: RuntimeConfig,
        owner: Owner,
        registry: Registry,
        network: str,
    ) -> None:
        self._engine = engine  # a getter: the manager replaces its engine after a shutdown
        self.config = config
        self.owner = owner
        self.registry = registry
        self.network = network
        self.counts: Counter[str] = Counter()  # hit, miss, stale, failed, made, expired, no_memory
        self._spares: dict[Key, list[Spare]] = {}
        self._making: Counter[Key] = Counter()
        self._dropping: set[str] = set()  # projects whose spares are being dropped: none made meanwhile
        self._waiters: dict[Key, deque[asyncio.Future[Spare | None]]] = {}  # creates waiting for a spare in the making
        self._jobs: set[asyncio.Task[Any]] = set()
        self._removals: set[Future[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- what is in the pool -----------------------------------------------------------------

    @property
    def size(self) -> int:
        return sum(len(s) for s in self._spares.values())

    def ready(self, project_id: str, language: str) -> int:
        return len(self._spares.get((project_id, language), ()))

    def spares(self) -> list[Spare]:
        return [s for key in self._spares.values() for s in key]

    # -- hand-over ---------------------------------------------------------------------------

    async def take(self, project_id: str, language: str, *, image: str, network: str, name: str) -> str | None:
        """The id of a fresh spare, now named `name`; None means: create the task's container cold."""
        key = (project_id, language)
        spare = self._pop(key, network) or await self._wait_for_spare(key, network)
        if spare is None:
            self.counts["miss"] += 1
            return None
        engine = self._engine()
        api = engine.client.api
        try:
            # Checks and rename in one round trip: the hot path pays the slowest of three calls, not their sum.
            results: tuple[Any, ...] = await asyncio.gather(
                engine.call(api.inspect_image, image),
                engine.call(api.inspect_container, spare.container_id),
                engine.call(GATE.exclusive_call, api.rename, spare.container_id, name),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            self._discard(spare)
            raise
        current, state, renamed = results
        problem: BaseException | str | None = next(
            (r for r in (current, state, renamed) if isinstance(r, BaseException)), None
        )
        if problem is None and current["Id"] != spare.image_id:
            # The tag was rebuilt since the spare was made: never hand out the old image.
            self.counts["stale"] += 1
            self._drop_stale(language, str(current["Id"]))
            problem = "its image is older than the one tagged " + image
        elif problem is None and not state["State"]["Running"]:
            self.counts["failed"] += 1
            problem = f"it is not running ({state['State']['Status']})"
        elif isinstance(problem, BaseException):
            if isinstance(renamed, docker.errors.APIError) and renamed.status_code == 409 and problem is renamed:
                # The task's name is taken: the cold path reports why. The spare is untouched: keep it.
                self._spares.setdefault(key, []).insert(0, spare)
                return None
            self.counts["failed"] += 1
        if problem is None:
            self.counts["hit"] += 1
            return spare.container_id
        log.warning("spare %s not handed over, creating cold instead: %s", spare.name, problem)
        if isinstance(renamed, BaseException):
            self._discard(spare)
        else:
            # It carries the task's name now: gone before the cold create claims that name.
            with contextlib.suppress(Exception):
                await engine.call(remove_container_sync, engine, spare.container_id)
        return None

    async def _wait_for_spare(self, key: Key, network: str) -> Spare | None:
        """No spare ready, but one is being made that no other create waits for: it beats a cold create."""
        waiters = self._waiters.setdefault(key, deque())
        if network != self.network or self._making[key] <= sum(not w.done() for w in waiters):
            return None
        waiter: asyncio.Future[Spare | None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=self.config.api_timeout)
        except asyncio.CancelledError:
            got = waiter.result() if waiter.done() else None
            if got is not None:
                self._discard(got)
            waiter.cancel()
            raise
        if not waiter.done():
            waiter.cancel()
            return None
        spare = waiter.result()
        if spare is not None:
            self.counts["waited"] += 1
        return spare

    def _hand(self, key: Key, spare: Spare | None) -> bool:
        """Give a spare just made (or None: it failed) to the first create still waiting for the key."""
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(spare)
                return True
        return False

    def _pop(self, key: Key, network: str) -> Spare | None:
        queue = self._spares.get(key)
        if not queue:
            return None
        deadline = time.monotonic() - self.config.pool_idle_ttl
        for i, spare in enumerate(queue):
            if spare.made_at < deadline:
                continue  # the reaper removes it
            if spare.network == network:
                return queue.pop(i)
        return None

    def _drop_stale(self, language: str, image_id: str) -> None:
        for (_, lang), queue in self._spares.items():
            if lang == language:
                for spare in [s for s in queue if s.image_id != image_id]:
                    queue.remove(spare)
                    self._discard(spare)

    # -- making spares -----------------------------------------------------------------------

    def refill(self, project_id: str, language: str) -> None:
        """In the background, bring the key back to `pool_spares_per_key` spares (a task started or ended)."""
        key = (project_id, language)
        n = self._reserve(key, self.config.pool_spares_per_key, background=True)
        if n:
            try:
                self._spawn(self._fill(key, n))
            except RuntimeError:  # no running event loop: nothing to refill in
                self._making[key] -= n

    async def prewarm(self, project_id: str, language: str, count: int) -> int:
        """Make spares until the key has `count` (capped); returns how many are ready now."""
        key = (project_id, language)
        n = self._reserve(key, min(count, self.config.pool_max_per_key))
        if n:
            await self._fill(key, n)
        return self.ready(project_id, language)

    def _reserve(self, key: Key, want: int, *, background: bool = False) -> int:
        """Count in `_making` the spares this key may still get; `_fill` makes them."""
        if self._closed or key[0] in self._dropping:
            return 0
        have = len(self._spares.get(key, ())) + self._making[key]
        making = sum(self._making.values())
        room = self.config.pool_max_spares - self.size - making
        if background:  # refills only; an explicit prewarm is the orchestrator's call
            room = min(room, self.config.pool_max_making - making)
            if want > have and room > 0 and self.load() > self.config.pool_fill_max_load:
                # The engine is busy with task work: a spare made now would slow the tasks it competes
                # with, and under saturation it is the one that is never handed over (measured).
                self.counts["busy"] += 1
                return 0
        n = max(0, min(want - have, room))
        self._making[key] += n
        return n

    def load(self) -> int:
        """Creates, starts and removals in flight in this process, plus spares being made (counted whole)."""
        return LOAD.busy + sum(self._making.values())

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
                self._hand(key, None)

    async def _make_one(self, key: Key) -> None:
        try:
            if not self._memory_ok():
                self.counts["no_memory"] += 1
                self._hand(key, None)
                return
            spare = await self._create(key)
        except asyncio.CancelledError:
            self._hand(key, None)
            raise
        except Exception as err:  # a spare that cannot be made is a cold start later, nothing more
            self.counts["failed"] += 1
            log.warning("could not make a spare for project %s, %s: %s", key[0], key[1], err)
            self._hand(key, None)
            return
        finally:
            self._making[key] -= 1
        if self._closed:
            self._discard(spare)
            self._hand(key, None)
            return
        self.counts["made"] += 1
        if not self._hand(key, spare):
            self._spares.setdefault(key, []).append(spare)
            self._ensure_reaper()

    def _memory_ok(self) -> bool:
        available = mem_available()
        return available is None or available >= self.config.pool_min_available_memory

    def spare_labels(self, project_id: str, language: str, now: float) -> dict[str, str]:
        """What is known when a spare is made: no task. Its expiry covers the idle wait and a task's life."""
        out = self.owner.labels(
            task_id="", project_id=project_id, language=language,
            ttl=self.config.pool_idle_ttl + self.config.container_ttl, now=now, extra=self.config.extra_labels,
        )
        del out[labels.TASK]
        out[labels.POOL] = SPARE
        return out

    async def _create(self, key: Key) -> Spare:
        project_id, language = key
        lang = self.registry.resolve(language)
        engine = self._engine()
        api = engine.client.api
        spec = ContainerSpec(
            image=f"{lang.image}:{self.config.image_tag}",
            name=f"{SPARE_PREFIX}{project_id}-{lang.name}-{uuid.uuid4().hex[:10]}",
            labels=self.spare_labels(project_id, lang.name, time.time()),
            volume=volume_name(project_id),
            volume_labels=self.owner.volume_labels(project_id),
            cache=project_cache(self.owner, project_id, lang),
            network=self.network,
            resources=self.registry.resources_for(lang),
            config=self.config,
        )
        host_config = api.create_host_config(**spec.host_config())
        created = await engine.call(
            LOAD.call, api.create_container, **spec.create_kwargs(host_config),
            # Made after all, but nobody waits for it any more (deadline, cancel): remove it.
            on_abandon=lambda made: remove_container_sync(engine, str(made["Id"])),
        )
        container_id = str(created["Id"])
        try:
            await engine.call(GATE.shared_call, api.start, container_id)
            attrs = await engine.call(api.inspect_container, container_id)
        except BaseException:
            self._remove_soon(container_id)
            raise
        return Spare(container_id, spec.name, key, self.network, str(attrs["Image"]), time.monotonic())

    # -- removal and the idle TTL ----------------------------------------------------------------

    def _discard(self, spare: Spare) -> None:
        self._remove_soon(spare.container_id)

    def _remove_soon(self, container_id: str) -> None:
        with contextlib.suppress(RuntimeError):  # the engine is closed: cleanup will find it by its labels
            future = self._engine().submit(remove_container_sync, self._engine(), container_id)
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
            deadline = time.monotonic() + self.config.api_timeout
            while True:
                for (project, _), queue in self._spares.items():
                    if project == project_id:
                        for spare in list(queue):
                            queue.remove(spare)
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
        deadline = time.monotonic() - self.config.pool_idle_ttl
        gone = 0
        for queue in self._spares.values():
            for spare in [s for s in queue if s.made_at < deadline]:
                queue.remove(spare)
                self._discard(spare)
                gone += 1
        self.counts["expired"] += gone
        return gone

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = self._spawn(self._reap())

    async def _reap(self) -> None:
        while not self._closed:
            oldest = min((s.made_at for s in self.spares()), default=None)
            if oldest is None:
                return  # restarted with the next spare
            await asyncio.sleep(max(0.05, oldest + self.config.pool_idle_ttl - time.monotonic()))
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
            await asyncio.wait(jobs, timeout=self.config.api_timeout)
        for spare in self.spares():
            self._discard(spare)
        self._spares.clear()
        for key in list(self._waiters):
            while self._hand(key, None):
                pass
        await self.settle()
        await self._sweep()

    async def settle(self) -> None:
        """Wait for the removals the pool has started."""
        if self._removals:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._removals)), return_exceptions=True)

    async def _sweep(self) -> None:
        """Remove idle spares of this owner the engine still has (a creation cut off by cancellation)."""
        engine = self._engine()
        mine = [f"{labels.OWNER}={self.owner.manager_id}", f"{labels.POOL}={SPARE}"]
        try:
            found = await engine.call(engine.client.api.containers, all=True, filters={"label": mine})
            idle = [c["Id"] for c in found if any(n.lstrip("/").startswith(SPARE_PREFIX) for n in c["Names"])]
            await asyncio.gather(*(engine.call(remove_container_sync, engine, cid) for cid in idle))
        except Exception as err:  # cleanup removes what is left by its labels
            log.warning("could not sweep the pool's spares: %s", err)


def remove_container_sync(engine: Engine, container_id: str) -> None:
    """Force-remove a container (volumes kept); gone already or being removed is fine."""
    try:
        GATE.shared_call(engine.client.api.remove_container, container_id, force=True, v=False)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        if err.status_code != 409:  # 409: a removal is already in progress
            raise
