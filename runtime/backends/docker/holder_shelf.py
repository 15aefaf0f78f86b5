"""The bookkeeping of network namespace holders (netns.py): which are free, which sandbox each busy one
serves, which projects are having one made. One lock: a removal finishes on an engine thread and gives
its sandbox's holder back from there."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime import labels

IDLE_SECONDS = 300.0  # a free holder this long unused goes (the warm pool's idle TTL)
LEASE_SECONDS = 15.0  # a free holder whose manager stopped renewing this long ends itself
# Holders made at once for one project: each sandbox made without one asks for one, so a project gets
# as many as it has sandboxes at a time; two at once reach that soon without a burst of tasks (sixteen
# at once) also paying for sixteen holders while it starts.
MAKING_PER_KEY = 2
# And over all projects: sixteen new projects at once (each task's own namespace a network set-up already)
# would otherwise pay for thirty-two holders more in the same seconds, and run slower than without any
# (bench_pool.py's first throughput round at concurrency 16: 0.80 of raw Docker's rate).
MAKING_IN_ALL = 4
MAX_FREE = 32  # free holders kept over all projects: past it, the one free the longest goes
_SEEN_PRUNE = 4 * 1024  # projects remembered before the ones not seen for IDLE_SECONDS are forgotten


@dataclass(frozen=True)
class HolderKey:
    project: str
    network: str


@dataclass(eq=False)  # one holder is one object: found by identity, never by equal fields
class Holder:
    container_id: str
    key: HolderKey
    free_since: float = 0.0
    # The lease its agent should hold: LEASE_SECONDS while free, its sandbox's while busy. Every lease
    # frame sends the value current when it goes, one at a time, so the last one sent is always right
    # (a renewal racing a hand-over cannot leave a task's namespace on a lease nobody renews).
    lease: float = LEASE_SECONDS
    generation: int = 0  # the shelf's generation it was made in: `clear` ends a generation
    epoch: int = 0  # its project's epoch when it was made: deleting the project ends an epoch
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)


class HolderShelf:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # (reentrant: `left` frees a holder in the same step)
        self._free: dict[HolderKey, list[Holder]] = {}
        self._busy: dict[str, Holder] = {}  # sandbox container id -> the holder it joined
        self._making: Counter[HolderKey] = Counter()
        self._seen: dict[HolderKey, float] = {}  # when each project last had a sandbox made
        self._known: set[str] = set()  # every holder made and not removed, free, busy or in between
        self._epochs: Counter[str] = Counter()  # per project: how many times it was deleted
        self._leaving: dict[HolderKey, set[Holder]] = {}  # holders whose sandbox is being removed, per key
        self.generation = 0
        # "joined" a kept namespace, "own" (none was free), holders "made", removed when "idle",
        # "evicted" (over MAX_FREE) or "lost" (its agent did not answer a lease)
        self.counts: Counter[str] = Counter()

    def take_free(self, key: HolderKey) -> Holder | None:
        """A free holder of `key`, now taken, or None."""
        with self._lock:
            free = self._free.get(key) or []
            return free.pop() if free else None

    def leaving_now(self, key: HolderKey) -> int:
        """How many holders of `key` have their sandbox being removed (free once it is gone)."""
        with self._lock:
            return len(self._leaving.get(key, ()))

    def making_now(self, key: HolderKey) -> int:
        """How many holders of `key` are being made."""
        with self._lock:
            return self._making[key]

    def take(self, key: HolderKey, now: float, holder: Holder | None = None) -> tuple[Holder | None, bool]:
        """(`holder` or a free holder of `key`, now taken; whether to make one: none was free, the project
        came back within IDLE_SECONDS (a one-off task's holder would cost a whole network set-up and wait
        unused), and fewer than MAKING_PER_KEY of it and MAKING_IN_ALL in all are on their way)."""
        with self._lock:
            free = self._free.get(key) or []
            holder = holder or (free.pop() if free else None)
            again = now - self._seen.get(key, -IDLE_SECONDS - 1) <= IDLE_SECONDS
            self._seen[key] = now
            if len(self._seen) > _SEEN_PRUNE:
                self._seen = {k: t for k, t in self._seen.items() if now - t <= IDLE_SECONDS}
            make = (holder is None and again and self._making[key] < MAKING_PER_KEY
                    and sum(self._making.values()) < MAKING_IN_ALL)
            if make:
                self._making[key] += 1
            return holder, make

    def made(self, container_id: str, key: HolderKey) -> Holder:
        with self._lock:
            self._known.add(container_id)
            self.counts["made"] += 1
            return Holder(container_id, key, generation=self.generation, epoch=self._epochs[key.project])

    def done_making(self, key: HolderKey) -> None:
        with self._lock:
            self._making[key] -= 1
            if self._making[key] <= 0:
                del self._making[key]

    def add_free(self, holder: Holder) -> Holder | None:
        """Free `holder`, and what to remove: `holder` itself if it belongs to an ended generation (the
        backend closed meanwhile) or project epoch (the project was deleted meanwhile), else past
        MAX_FREE the one free the longest (taken out), else None."""
        with self._lock:
            if holder.generation != self.generation:
                return None  # `clear` gave it to the caller already
            if holder.epoch != self._epochs[holder.key.project]:
                self._known.discard(holder.container_id)
                return holder
            self._free.setdefault(holder.key, []).append(holder)
            free = [h for hs in self._free.values() for h in hs]
            if len(free) <= MAX_FREE:
                return None
            oldest = min(free, key=lambda h: h.free_since)
            self._free[oldest.key].remove(oldest)
            self._known.discard(oldest.container_id)
            self.counts["evicted"] += 1
            return oldest

    def take_if_free(self, holder: Holder) -> bool:
        """Take `holder` out of the free ones, if it is still there (no sandbox took it meanwhile)."""
        with self._lock:
            free = self._free.get(holder.key) or []
            if holder not in free:
                return False
            free.remove(holder)
            return True

    def serving(self, container_id: str, holder: Holder) -> None:
        with self._lock:
            self._busy[container_id] = holder

    def holder_of(self, container_id: str) -> Holder | None:
        with self._lock:
            return self._busy.get(container_id)

    def leaving(self, container_id: str) -> Holder | None:
        with self._lock:
            holder = self._busy.pop(container_id, None)
            if holder is not None:
                self._leaving.setdefault(holder.key, set()).add(holder)
            return holder

    def left(self, holder: Holder, *, free: bool) -> Holder | None:
        """Its sandbox's removal is over: no longer leaving, and with `free` free again, in one step (a
        sandbox looking meanwhile sees it either way). What to remove, as `add_free` says."""
        with self._lock:
            leaving = self._leaving.get(holder.key)
            if leaving is not None:
                leaving.discard(holder)
                if not leaving:
                    del self._leaving[holder.key]
            return self.add_free(holder) if free else None

    def adopt(self, container_id: str, values: Mapping[str, str]) -> None:
        """A sandbox taken over (with its labels): the holder it is in, if any, is busy with it here now."""
        holder_id, project, network = values.get(labels.NETNS), values.get(labels.PROJECT), values.get(labels.NETWORK)
        if not (holder_id and project and network):
            return
        with self._lock:
            if container_id not in self._busy:
                self._busy[container_id] = Holder(holder_id, HolderKey(project, network), lease=0.0,
                                                  generation=self.generation, epoch=self._epochs[project])
                self._known.add(holder_id)

    def forget(self, holder: Holder) -> None:
        """`holder` is being removed."""
        with self._lock:
            self._known.discard(holder.container_id)

    def forget_project(self, project: str) -> list[Holder]:
        """The project's free holders, taken out, to remove; and the project is new again (its holders
        busy or being made go when they would be free)."""
        with self._lock:
            self._epochs[project] += 1
            gone = [h for key, hs in self._free.items() if key.project == project for h in hs]
            for holder in gone:
                self._free[holder.key].remove(holder)
                self._known.discard(holder.container_id)
            self._seen = {k: t for k, t in self._seen.items() if k.project != project}
            return gone

    def free_and_idle(self, now: float) -> tuple[list[Holder], list[Holder]]:
        """(the free holders still kept, the ones free longer than IDLE_SECONDS: taken out, to remove)."""
        with self._lock:
            free = [h for hs in self._free.values() for h in hs]
            idle = [h for h in free if now - h.free_since > IDLE_SECONDS]
            for holder in idle:
                self._free[holder.key].remove(holder)
                self._known.discard(holder.container_id)
                self.counts["idle"] += 1
            return [h for h in free if h not in idle], idle

    def clear(self) -> list[str]:
        """Forget everything (a new generation); the ids of every holder made and not removed."""
        with self._lock:
            self.generation += 1
            ids = sorted(self._known)
            self._known.clear()
            self._free.clear()
            self._busy.clear()
            self._leaving.clear()
            self._making.clear()  # (a making cancelled before it ran never says it is done)
            return ids
