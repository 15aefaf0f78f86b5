"""How many spares each (project, language) key should have, from how its tasks arrive.

A key that saw no task, or one, is speculative: it gets the base number of spares and its spares
are the first to be evicted when the global cap is full. A key whose tasks come faster than a
spare takes to make gets a pipeline: enough spares in the making that each arrival finds one
(up to the per-key cap). When its tasks stop coming, the key decays back to the base.

The time between a key's tasks is measured without the time the previous one waited for its
container: a caller that runs tasks back to back arrives only as fast as it is served, so the raw
gap would say "one spare is enough" exactly when it is not: one spare at a time leaves the
engine's second core idle (bench_floor.py, back-to-back, six runs alternating with the raw gap:
mean start -> first output 424 -> 368 ms, tasks/s 2.23 -> 2.58, medians of the runs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

Key = tuple[str, str]
SMOOTHING = 0.3  # weight of the newest sample in the running averages
FIRST_MAKE_GUESS = 0.5  # seconds a spare takes to make, before one was measured


@dataclass
class KeyDemand:
    tasks: int = 0  # tasks that asked for a spare of this key; an arrival's number is its ticket
    in_flight: int = 0  # arrivals not yet served
    last_arrival: float = 0.0  # time.monotonic() of the latest
    # How long the latest arrival waited for its container, if it was served alone: then its
    # caller could not ask again before, and the next gap leaves the wait out.
    last_wait: float = 0.0
    interval: float | None = None  # running average of the time between arrivals, waits left out
    last_used: float = field(default_factory=time.monotonic)  # an arrival or an explicit prewarm: for LRU

    def arrived(self, now: float) -> int:
        """Count an arrival; its ticket for `served`."""
        if self.tasks:
            gap = max(0.0, now - self.last_arrival - self.last_wait)
            self.interval = gap if self.interval is None else (1 - SMOOTHING) * self.interval + SMOOTHING * gap
        self.tasks += 1
        self.in_flight += 1
        self.last_wait = 0.0
        self.last_arrival = self.last_used = now
        return self.tasks

    def served(self, ticket: int, waited: float | None) -> None:
        """Arrival `ticket` got its container after `waited` seconds (None: it got none)."""
        self.in_flight = max(0, self.in_flight - 1)
        # With tasks overlapping, one's wait does not hold back the next one's arrival.
        if waited is not None and ticket == self.tasks and self.in_flight == 0:
            self.last_wait = max(0.0, waited)

    @property
    def speculative(self) -> bool:
        return self.tasks <= 1

    def quiet(self, now: float) -> bool:
        """Its tasks stopped coming: nothing for ten of its intervals (at least 30 s)."""
        if self.interval is None:
            return True
        return now - self.last_arrival > max(30.0, 10 * self.interval)


class Demand:
    def __init__(self, base: int, cap: int) -> None:
        self.base, self.cap = base, cap
        self.keys: dict[Key, KeyDemand] = {}
        self.make_time = FIRST_MAKE_GUESS  # running average of how long a spare takes to be ready

    def of(self, key: Key) -> KeyDemand:
        demand = self.keys.get(key)
        if demand is None:
            demand = self.keys[key] = KeyDemand()
        return demand

    def arrived(self, key: Key) -> int:
        """Count a task's arrival; its ticket for `served`."""
        return self.of(key).arrived(time.monotonic())

    def served(self, key: Key, ticket: int, waited: float | None) -> None:
        """The task with `ticket` got its container after `waited` seconds (None: it got none)."""
        self.of(key).served(ticket, waited)

    def touched(self, key: Key) -> None:
        """The orchestrator asked for this key (prewarm): recently used, whatever its tasks."""
        self.of(key).last_used = time.monotonic()

    def made(self, seconds: float) -> None:
        self.make_time = (1 - SMOOTHING) * self.make_time + SMOOTHING * seconds

    def target(self, key: Key) -> int:
        """Spares the key should have (ready and in the making)."""
        demand = self.keys.get(key)
        if self.base == 0 or demand is None or demand.interval is None or demand.quiet(time.monotonic()):
            return self.base  # a base of 0: spares only where the orchestrator prewarms
        # Arrivals every `interval`, each spare ready `make_time` after it was started: that many
        # must be on their way at once for every arrival to find one.
        depth = math.ceil(self.make_time / max(demand.interval, 1e-3))
        return max(self.base, min(self.cap, depth))

    def unhurried(self, key: Key, delay: float) -> bool:
        """The key's tasks come slower than a spare is made, by `delay` at least: its next spare may
        start `delay` later and still be ready first. A key with no interval yet is not known to be."""
        demand = self.keys.get(key)
        return demand is not None and demand.interval is not None and demand.interval >= self.make_time + delay

    def eviction_order(self, keys: list[Key], keep: Key) -> list[Key]:
        """Keys whose idle spares may go so `keep` gets one: speculative first, then least recently used."""
        others = [k for k in keys if k != keep]
        return sorted(others, key=lambda k: (not self.of(k).speculative, self.of(k).last_used))
