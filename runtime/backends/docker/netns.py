"""Network namespaces kept for a project's next sandbox: Docker's costliest start-up step done once.

Why: for every container on a user-defined network, Docker 20.10 runs its own 72 MiB binary three
more times (libnetwork's prestart hook, the IPv6 switch, the embedded resolver's rules): about a
third of the host CPU that one sandbox's create, start and remove cost, and so of the rate at which
the warm pool can make spares (`benchmarks/bench_floor.py`). A container that joins another's network
namespace (`network_mode: container:<id>`) skips all of it.

How: a *holder* is a small container of one project on one network (no volumes, a few pids, the
image's sandbox agent as its only process) that keeps a network namespace. A sandbox of that project
on that network joins a free holder if there is one, or one its project's last sandbox is leaving
(holder_waits.py). If not, and the project had a sandbox in the last `IDLE_SECONDS` (a one-off task's
holder would be waste), a holder is made: a warm spare waits for it and joins it, a task (someone is
waiting for it) is made on the network as before and the holder serves the project's next one. When
the sandbox is removed, its holder is free again. Holders idle for `IDLE_SECONDS` go, and the longest
free beyond `MAX_FREE`.

Isolation is what it was: a holder serves **one sandbox at a time** (two sandboxes never share a
namespace at once, so they cannot reach each other over loopback), and only sandboxes of its own
project, so what one leaves in the namespace (counters and TIME_WAIT sockets in /proc/net) is seen
at most by a later task of the same project, which shares its volume anyway. A sandbox cannot change
the namespace (non-root, no capabilities). The firewall is per bridge, so the policy is the same.

Not used for: the egress network (its proxy knows a sandbox by its address), a sandbox with resolver
options (Docker cannot set them on a joined container), or any OCI runtime but runc and crun (gVisor's
netstack takes the namespace's addresses over; they would not be there for the next sandbox: the
backend asks `oci_runtimes.on_host_kernel` before it asks `holder_key`). Used for
`network="none"` too: such a container still costs two of the three runs (measured 483 against 367 ms
a cycle). A joined sandbox shares its holder's hostname, /etc/hosts and resolv.conf (read-only); its
image health check still asks its own agent, whose abstract socket is named after its pid namespace
too (holders run no health check of their own).

Lifetime: a free holder holds a lease its agent keeps only while this process renews it, like a warm
spare; a busy holder follows its sandbox's lease (a spare's is renewed, a task's is none, for the
task to outlive its manager). A manager that takes a task over takes its holder too. At shutdown and
at interpreter exit the holders no sandbox is in are removed; cleanup removes a holder no sandbox
joins once its manager is gone; deleting a project's volume removes its free holders.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace

from runtime import labels
from runtime.backends.base import NameTaken
from runtime.backends.docker.calls import remove_unjoined_now
from runtime.backends.docker.holder_shelf import LEASE_SECONDS, Holder, HolderKey, HolderShelf
from runtime.backends.docker.holder_waits import LEAVING_WAIT, MADE_WAIT, HolderWaits
from runtime.errors import ImageMissing
from runtime.registry import Resources
from runtime.sandbox.spec import ContainerSpec

log = logging.getLogger(__name__)

HOLDER_PREFIX = "theappapp_netns-"
HOLDER_ROLE = labels.ROLE_NETNS
RENEW_EVERY = LEASE_SECONDS / 3
HOLDER_RESOURCES = Resources(memory="64m", cpus=0.25, pids=16)  # an agent that only waits
_COPIED = (labels.MANAGED, labels.INSTALLATION, labels.PROJECT, labels.OWNER, labels.OWNER_HOST,
           labels.OWNER_PID, labels.OWNER_STARTED)


def holder_key(spec: ContainerSpec, egress_network: str) -> HolderKey | None:
    """The holders a sandbox made from `spec` may join, or None: it gets a namespace of its own."""
    project = spec.labels.get(labels.PROJECT)
    if not project or spec.dns_options or spec.network == egress_network:
        return None
    if spec.network.startswith("container:"):
        return None
    return HolderKey(project, spec.network)


def holder_spec(spec: ContainerSpec) -> ContainerSpec:
    """A holder for sandboxes like `spec`: its image, hardening and network; nothing mounted."""
    values = {key: spec.labels[key] for key in _COPIED if key in spec.labels}
    values |= {labels.ROLE: HOLDER_ROLE, labels.CREATED_AT: str(int(time.time()))}
    return replace(spec, name=HOLDER_PREFIX + uuid.uuid4().hex[:12], labels=values, volumes=(),
                   resources=HOLDER_RESOURCES.over(spec.resources), environment={}, healthcheck=False,
                   agent_lease=LEASE_SECONDS)  # leased from its start: made in the background, see `_make_one`


def joined_spec(spec: ContainerSpec, holder: Holder) -> ContainerSpec:
    """`spec` in `holder`'s namespace; its labels say which holder and which network that is."""
    values = {**spec.labels, labels.NETNS: holder.container_id, labels.NETWORK: spec.network}
    return replace(spec, network=f"container:{holder.container_id}", labels=values)


class Holders:
    """This backend's holders: made, handed to sandboxes, leased, freed and removed.

    `left` runs on an engine thread (a removal finished there); it reads `_closed` and `_loop` without a
    lock (single reads of one attribute each, which the GIL keeps whole); what it changes is the shelf's,
    under its lock, where a holder of an ended generation is turned away.
    """

    def __init__(self, make: Callable[[ContainerSpec], Awaitable[str]],
                 lease: Callable[[str, float], Awaitable[bool]],
                 remove_soon: Callable[[str], Future[None]], base_url: Callable[[], str]) -> None:
        self._make, self._lease, self._remove_soon, self._base_url = make, lease, remove_soon, base_url
        self.shelf = HolderShelf()
        self.counts = self.shelf.counts
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewing: asyncio.Task[None] | None = None
        self._closed = False
        self._pending: set[Holder] = set()  # taken for a spare being made: renewed until the spare's lease
        self._waits = HolderWaits(self.shelf)  # sandboxes waiting for a holder being freed or made
        # Once, now: the backend is made before the warm pool, so this hook runs after the pool's (atexit
        # runs last-registered first) and finds the spares' holders unjoined.
        atexit.register(self._at_exit)

    # -- a sandbox's namespace ------------------------------------------------------------------

    async def create(self, spec: ContainerSpec, key: HolderKey | None,
                     make: Callable[[ContainerSpec], Awaitable[str]]) -> str:
        """The sandbox made (`make`: create, start, greet) in a free holder of `key` if there is one.
        Made in it but failed: the holder goes, and the sandbox is made again with a namespace of its
        own (the holder may be why: stopped, or removed behind this backend's back)."""
        joined, holder = await self.join(spec, key)
        if holder is None:
            return await make(spec)
        try:
            container_id = await make(joined)
        except (NameTaken, ImageMissing):  # not the holder's doing: it is free again
            self.left(holder, removed=True)
            raise
        except Exception as err:
            self.failed(holder)
            log.info("%s could not join network namespace holder %s (%s); made on %s itself",
                     spec.name, holder.container_id[:12], err, spec.network)
            return await make(spec)
        except BaseException:
            self.failed(holder)
            raise
        self.shelf.serving(container_id, holder)
        return container_id

    async def join(self, spec: ContainerSpec, key: HolderKey | None) -> tuple[ContainerSpec, Holder | None]:
        """`spec` joined to a free holder of `key` (taken for it), or `spec` itself and a holder on its way."""
        if key is None:
            return spec, None
        self._closed = False  # (again, for a manager started again after its shutdown)
        self._loop = asyncio.get_running_loop()
        self._waits.bind(self._loop)
        # A warm spare is made ahead: it also waits for a holder being made (see holder_waits).
        spare = bool(spec.labels.get(labels.POOL))
        deadline = time.monotonic() + (MADE_WAIT if spare else LEAVING_WAIT)
        holder = self.shelf.take_free(key) or await self._waits.wait(key, spare, deadline)
        holder, make = self.shelf.take(key, time.monotonic(), holder)
        if make:
            self._spawn(self._make_one(spec, key))
            if spare:  # made for this spare: it waits for it (what is left of its time)
                holder = await self._waits.wait(key, spare, deadline)
        if holder is not None:
            # A task outlives its manager: so does its namespace. A warm spare holds a lease its manager
            # renews: its holder keeps one until the spare's (or the task's it becomes) follows.
            if spare:
                self._pending.add(holder)
                self._keep_renewing()
            try:
                answered = await self._send_lease(holder, LEASE_SECONDS if spare else 0.0)
            except Exception as err:  # its agent is gone: so is the holder, most likely
                log.debug("holder %s did not take its lease: %s", holder.container_id[:12], err)
                answered = False
            except BaseException:
                self.failed(holder)
                raise
            if answered:
                self.counts["joined"] += 1
                return joined_spec(spec, holder), holder
            self.counts["lost"] += 1
            self.failed(holder)
        self.counts["own"] += 1
        return spec, None

    def serves(self, container_id: str) -> bool:
        """Whether `container_id` is in a holder's namespace."""
        return self.shelf.holder_of(container_id) is not None

    def adopt(self, container_id: str, values: Mapping[str, str]) -> None:
        """A sandbox this backend did not make (a task taken over from a manager that is gone), with its
        labels: if it is in a holder's namespace, that holder is this backend's now, to free after it."""
        self.shelf.adopt(container_id, values)

    async def follow(self, container_id: str, seconds: float) -> None:
        """`container_id` was given a lease: its holder gets the same (a spare's ends with it)."""
        holder = self.shelf.holder_of(container_id)
        if holder is not None:
            self._pending.discard(holder)
            await self._send_lease(holder, seconds)

    def leaving(self, container_id: str) -> Holder | None:
        """The holder `container_id` joined, no longer its (the container is being removed). It holds a
        lease again at once, renewed until it is free: a manager killed during the removal must not
        leave it running with its task's none."""
        with contextlib.suppress(RuntimeError):  # (a backend that took a task over made no sandbox yet)
            self._loop = self._loop or asyncio.get_running_loop()
        holder = self.shelf.leaving(container_id)
        loop = self._loop
        if holder is not None and loop is not None and not loop.is_closed() and not self._closed:
            holder.lease = LEASE_SECONDS
            self._pending.add(holder)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._spawn, self._lease_leaving(holder))
        return holder

    async def _lease_leaving(self, holder: Holder) -> None:
        self._keep_renewing()
        with contextlib.suppress(Exception):  # an agent that does not answer: `_leased_free` decides
            await self._send_lease(holder)

    def left(self, holder: Holder, removed: bool) -> None:
        """After its sandbox's removal: free at once (the project's next sandbox may already be on its
        way), or (the removal failed: the sandbox may still be in it) removed too. Any thread."""
        loop = self._loop
        self._pending.discard(holder)
        if loop is None or loop.is_closed() or self._closed or holder.generation != self.shelf.generation:
            self.shelf.left(holder, free=False)
            return  # the manager is going or gone: close() and the exit hook decided
        if removed:
            holder.lease, holder.free_since = LEASE_SECONDS, time.monotonic()
        evicted = self.shelf.left(holder, free=removed)
        if evicted is not None:
            self._remove_soon(evicted.container_id)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._spawn, self._leased_free(holder) if removed else self._discard(holder))
            loop.call_soon_threadsafe(self._waits.wake)  # a sandbox may be waiting for it

    def failed(self, holder: Holder) -> None:
        """Its sandbox could not be made in it: the holder goes too (it may be why)."""
        self._spawn(self._discard(holder))

    def forget_project(self, project: str) -> None:
        """The project is deleted: its free holders go (a project made again under its id starts afresh)."""
        for holder in self.shelf.forget_project(project):
            self._remove_soon(holder.container_id)

    # -- upkeep ---------------------------------------------------------------------------------

    async def _make_one(self, spec: ContainerSpec, key: HolderKey) -> None:
        try:
            container_id = await self._make(holder_spec(spec))
            holder = self.shelf.made(container_id, key)
            holder.free_since = time.monotonic()
            # Leased before anyone can take it: without an agent to hold a lease it would outlive a killed
            # manager, so it goes.
            try:
                answered = not self._closed and await self._send_lease(holder)
            except Exception:  # the channel to its agent broke
                answered = False
            if not answered:
                await self._discard(holder)
                return
            self._add_free(holder)
            self._keep_renewing()
        except Exception as err:  # the sandbox was made without one; the next one tries again
            log.debug("no network namespace holder for project %s: %s", key.project, err)
        finally:
            self.shelf.done_making(key)
            self._waits.wake()  # a spare waiting for it takes it, or (none made) stops waiting

    def _add_free(self, holder: Holder) -> None:
        evicted = self.shelf.add_free(holder)
        if evicted is not None:
            self._remove_soon(evicted.container_id)

    async def _send_lease(self, holder: Holder, seconds: float | None = None) -> bool:
        if seconds is not None:
            holder.lease = seconds
        async with holder.sending:
            return await self._lease(holder.container_id, holder.lease)

    async def _leased_free(self, holder: Holder) -> None:
        """A free holder's lease sent (an agent that does not answer: it goes, unless a sandbox took it
        meanwhile, whose own lease call decides), its upkeep running."""
        try:
            answered = await self._send_lease(holder)
        except Exception:  # the channel to its agent broke
            answered = False
        if answered:
            self._keep_renewing()
        elif self.shelf.take_if_free(holder):
            self.counts["lost"] += 1
            await self._discard(holder)

    def _keep_renewing(self) -> None:
        """The renewal loop runs while any holder is free or taken for a spare being made."""
        if not self._closed and (self._renewing is None or self._renewing.done()):
            self._renewing = asyncio.get_running_loop().create_task(self._renew())

    async def _discard(self, holder: Holder) -> None:
        self._pending.discard(holder)
        self.shelf.forget(holder)
        # Shielded: a cancelled wait must not cancel the removal still queued in the engine's threads.
        await asyncio.shield(asyncio.wrap_future(self._remove_soon(holder.container_id)))

    async def _renew(self) -> None:
        """Renew the free holders' leases; remove the ones idle past IDLE_SECONDS. Ends with no free one."""
        while not self._closed:
            await asyncio.sleep(RENEW_EVERY)
            free, idle = self.shelf.free_and_idle(time.monotonic())
            for holder in idle:
                self._remove_soon(holder.container_id)
            pending = list(self._pending)
            if not free and not pending:
                return
            await asyncio.gather(*(self._leased_free(h) for h in free),
                                 *(self._send_lease(h) for h in pending), return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a removal that failed: cleanup's now
            log.debug("network namespace holder upkeep failed: %s", task.exception())

    # -- the end --------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait for the holders being made, freed or removed (a shutdown must not cut one off half made)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> list[str]:
        """Stop the upkeep; every holder still there, for the caller to remove those no sandbox joins
        (`remove_unjoined_now`): a task that outlives its manager keeps its namespace."""
        self._closed = True
        self._pending.clear()
        for task in [*self._tasks, *([self._renewing] if self._renewing else [])]:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                task.cancel()
        return self.shelf.clear()

    def _at_exit(self) -> None:
        """The interpreter is exiting (without a shutdown, or after one: then nothing is left)."""
        ids = self.close()
        if ids:
            remove_unjoined_now(self._base_url(), ids)
