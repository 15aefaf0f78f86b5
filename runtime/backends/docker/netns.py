"""Network namespaces kept for a project's next sandbox: Docker's costliest start-up step done once.

Why: for every container on a user-defined network, Docker 20.10 runs its own 72 MiB binary three
more times (libnetwork's prestart hook, the IPv6 switch, the embedded resolver's rules): about a
third of the host CPU that one sandbox's create, start and remove cost, and so of the rate at which
the warm pool can make spares (`benchmarks/bench_floor.py`). A container that joins another's network
namespace (`network_mode: container:<id>`) skips all of it.

How: a *holder* is a small container of one project on one network (no volumes, a few pids, the
image's sandbox agent as its only process) that keeps a network namespace. A sandbox of that project
on that network joins a free holder if there is one; if not, it is made on the network as before and
a holder is made in the background for the project's next sandbox. When the sandbox is removed, its
holder is free again. Holders idle for `IDLE_SECONDS` go.

Isolation is what it was: a holder serves **one sandbox at a time** (two sandboxes never share a
namespace at once, so they cannot reach each other over loopback), and only sandboxes of its own
project, so what one leaves in the namespace (counters and TIME_WAIT sockets in /proc/net) is seen
at most by a later task of the same project, which shares its volume anyway. A sandbox cannot change
the namespace (non-root, no capabilities). The firewall is per bridge, so the policy is the same.

Not used for: the egress network (its proxy knows a sandbox by its address), a sandbox with resolver
options (Docker cannot set them on a joined container), or an OCI runtime set in the config (gVisor's
netstack takes the namespace's addresses over; they would not be there for the next sandbox).

Lifetime: a free holder holds a lease its agent keeps only while this process renews it, like a warm
spare; a busy holder follows its sandbox's lease (a spare's is renewed, a task's is none, for the
task to outlive its manager). At interpreter exit the free holders are removed; cleanup removes a
holder no sandbox joins once its manager is gone.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import docker
import docker.errors

from runtime import labels
from runtime.registry import Resources
from runtime.sandbox.spec import ContainerSpec

log = logging.getLogger(__name__)

HOLDER_PREFIX = "theappapp_netns-"
HOLDER_ROLE = "netns"  # value of labels.ROLE on a holder
IDLE_SECONDS = 300.0  # a free holder this long unused goes (the warm pool's idle TTL)
LEASE_SECONDS = 15.0  # a free holder whose manager stopped renewing this long ends itself
RENEW_EVERY = LEASE_SECONDS / 3
HOLDER_RESOURCES = Resources(memory="64m", cpus=0.25, pids=16)  # an agent that only waits
_COPIED = (labels.MANAGED, labels.INSTALLATION, labels.PROJECT, labels.OWNER, labels.OWNER_HOST,
           labels.OWNER_PID, labels.OWNER_STARTED)


@dataclass(frozen=True)
class HolderKey:
    project: str
    network: str


@dataclass
class Holder:
    container_id: str
    key: HolderKey
    free_since: float = 0.0
    # The lease its agent should hold: LEASE_SECONDS while free, its sandbox's while busy. Every lease
    # frame sends the value current when it goes, one at a time, so the last one sent is always right
    # (a renewal racing a hand-over cannot leave a task's namespace on a lease nobody renews).
    lease: float = LEASE_SECONDS
    generation: int = 0  # the Holders' generation it was made in: a close() ends a generation
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)


def holder_key(spec: ContainerSpec, egress_network: str) -> HolderKey | None:
    """The holders a sandbox made from `spec` may join, or None: it gets a namespace of its own."""
    project = spec.labels.get(labels.PROJECT)
    if not project or spec.runtime or spec.dns_options or spec.network == egress_network:
        return None
    if spec.network.startswith("container:"):
        return None
    return HolderKey(project, spec.network)


def holder_spec(spec: ContainerSpec) -> ContainerSpec:
    """A holder for sandboxes like `spec`: its image, hardening and network; nothing mounted."""
    values = {key: spec.labels[key] for key in _COPIED if key in spec.labels}
    values |= {labels.ROLE: HOLDER_ROLE, labels.CREATED_AT: str(int(time.time()))}
    return replace(spec, name=HOLDER_PREFIX + uuid.uuid4().hex[:12], labels=values, volumes=(),
                   resources=HOLDER_RESOURCES.over(spec.resources), environment={})


def joined_spec(spec: ContainerSpec, holder: Holder) -> ContainerSpec:
    """`spec` in `holder`'s namespace; its labels say which holder and which network that is."""
    values = {**spec.labels, labels.NETNS: holder.container_id, labels.NETWORK: spec.network}
    return replace(spec, network=f"container:{holder.container_id}", labels=values)


class Holders:
    """This backend's holders: which are free, which sandbox each busy one serves.

    Thread-safe: a removal finishes on an engine thread and gives its holder back from there.
    """

    def __init__(self, make: Callable[[ContainerSpec], Awaitable[str]],
                 lease: Callable[[str, float], Awaitable[bool]],
                 remove_soon: Callable[[str], Future[None]], base_url: Callable[[], str]) -> None:
        self._make, self._lease, self._remove_soon, self._base_url = make, lease, remove_soon, base_url
        self._lock = threading.Lock()
        self._free: dict[HolderKey, list[Holder]] = {}
        self._busy: dict[str, Holder] = {}  # sandbox container id -> the holder it joined
        self._making: set[HolderKey] = set()
        self._known: set[str] = set()  # every holder made and not removed, free, busy or in between
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewing: asyncio.Task[None] | None = None
        self._closed = False
        self._generation = 0
        # "joined" a kept namespace, "own" (none was free), holders "made", "idle" ones removed
        self.counts: Counter[str] = Counter()
        atexit.register(self._at_exit)

    # -- a sandbox's namespace ------------------------------------------------------------------

    async def join(self, spec: ContainerSpec, key: HolderKey | None) -> tuple[ContainerSpec, Holder | None]:
        """`spec` joined to a free holder of `key` (taken for it), or `spec` itself and a holder on its way."""
        if key is None:
            return spec, None
        if self._closed:  # a manager started again after its shutdown
            self._closed = False
            atexit.register(self._at_exit)
        self._loop = asyncio.get_running_loop()
        with self._lock:
            free = self._free.get(key) or []
            holder = free.pop() if free else None
            make = holder is None and key not in self._making
            if make:
                self._making.add(key)
        if holder is None:
            self.counts["own"] += 1
            if make:
                self._spawn(self._make_one(spec, key))
            return spec, None
        self.counts["joined"] += 1
        await self._send_lease(holder, 0)  # a task outlives its manager: so does its namespace
        return joined_spec(spec, holder), holder

    def serving(self, container_id: str, holder: Holder) -> None:
        with self._lock:
            self._busy[container_id] = holder

    def serves(self, container_id: str) -> bool:
        """Whether `container_id` is in a holder's namespace."""
        with self._lock:
            return container_id in self._busy

    async def follow(self, container_id: str, seconds: float) -> None:
        """`container_id` was given a lease: its holder gets the same (a spare's ends with it)."""
        with self._lock:
            holder = self._busy.get(container_id)
        if holder is not None:
            await self._send_lease(holder, seconds)

    def leaving(self, container_id: str) -> Holder | None:
        """The holder `container_id` joined, no longer its (the container is being removed)."""
        with self._lock:
            return self._busy.pop(container_id, None)

    def left(self, holder: Holder, removed: bool) -> None:
        """After its sandbox's removal: free at once (the project's next sandbox may already be on its
        way), or (the removal failed: the sandbox may still be in it) removed too. Any thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed or holder.generation != self._generation:
            return  # the manager is going or gone: close() and the exit hook decided
        if removed:
            holder.lease, holder.free_since = LEASE_SECONDS, time.monotonic()
            with self._lock:
                self._free.setdefault(holder.key, []).append(holder)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._spawn, self._leased_free(holder) if removed else self._discard(holder))

    def failed(self, holder: Holder) -> None:
        """Its sandbox could not be made: the holder goes too (it may be why)."""
        self._spawn(self._discard(holder))

    # -- upkeep ---------------------------------------------------------------------------------

    async def _make_one(self, spec: ContainerSpec, key: HolderKey) -> None:
        try:
            container_id = await self._make(holder_spec(spec))
            with self._lock:
                self._known.add(container_id)
            self.counts["made"] += 1
            holder = Holder(container_id, key, free_since=time.monotonic(), generation=self._generation)
            if not self._closed:
                with self._lock:
                    self._free.setdefault(key, []).append(holder)
            await self._leased_free(holder)
        except Exception as err:  # the sandbox was made without one; the next one tries again
            log.debug("no network namespace holder for project %s: %s", key.project, err)
        finally:
            with self._lock:
                self._making.discard(key)

    async def _send_lease(self, holder: Holder, seconds: float | None = None) -> bool:
        if seconds is not None:
            holder.lease = seconds
        async with holder.sending:
            return await self._lease(holder.container_id, holder.lease)

    async def _leased_free(self, holder: Holder) -> None:
        """A holder just freed: its lease sent, its upkeep running; without an agent to hold a lease it
        would outlive a killed manager, so it goes."""
        if not self._closed and await self._send_lease(holder):
            if self._renewing is None or self._renewing.done():
                self._renewing = asyncio.get_running_loop().create_task(self._renew())
            return
        with self._lock:
            free = self._free.get(holder.key) or []
            if holder in free:
                free.remove(holder)
        await self._discard(holder)

    async def _discard(self, holder: Holder) -> None:
        with self._lock:
            self._known.discard(holder.container_id)
        await asyncio.wrap_future(self._remove_soon(holder.container_id))

    async def _renew(self) -> None:
        """Renew the free holders' leases; remove the ones idle past IDLE_SECONDS. Ends with no free one."""
        while not self._closed:
            await asyncio.sleep(RENEW_EVERY)
            now = time.monotonic()
            with self._lock:
                free = [h for hs in self._free.values() for h in hs]
                idle = [h for h in free if now - h.free_since > IDLE_SECONDS]
                for holder in idle:
                    self._free[holder.key].remove(holder)
                    self._known.discard(holder.container_id)
                if not free:
                    return
            for holder in idle:
                self._remove_soon(holder.container_id)
                self.counts["idle"] += 1
            await asyncio.gather(*(self._send_lease(h) for h in free if h not in idle), return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the end --------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Stop the upkeep; every holder still there, for the caller to remove those no sandbox joins
        (`remove_unjoined_now`): a task that outlives its manager keeps its namespace."""
        self._closed = True
        self._generation += 1
        atexit.unregister(self._at_exit)
        for task in [*self._tasks, *([self._renewing] if self._renewing else [])]:
            task.cancel()
        with self._lock:
            ids = sorted(self._known)
            self._known.clear()
            self._free.clear()
        return ids

    def _at_exit(self) -> None:
        """The interpreter is exiting without a shutdown (the pool removed its spares just before)."""
        ids = self.close()
        if ids:
            remove_unjoined_now(self._base_url(), ids)


def remove_unjoined_now(base_url: str, holder_ids: list[str]) -> None:
    """Blocking, on a client of its own (at exit no engine thread pool is left): remove those of
    `holder_ids` that no container names as its holder."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=10)
    except docker.errors.DockerException:
        return
    try:
        joined = {str((entry.get("Labels") or {}).get(labels.NETNS))
                  for entry in client.api.containers(all=True, filters={"label": [labels.NETNS]})}
        for container_id in holder_ids:
            if container_id not in joined:
                with contextlib.suppress(docker.errors.DockerException):
                    client.api.remove_container(container_id, force=True, v=False)
    except docker.errors.DockerException:
        pass
    finally:
        client.close()
