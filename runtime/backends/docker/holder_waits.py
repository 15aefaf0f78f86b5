"""Waiting for a network namespace holder that is not free yet but soon will be (netns.py).

Two kinds are worth a wait. A holder *leaving*: its sandbox is being removed (back-to-back tasks, a
hand-over's replacement), free within ~0.1-0.2 s, where a namespace of the sandbox's own would cost
~0.3 s of CPU more. A holder *being made*, for warm spares only: it costs the same network set-up as a
namespace of the spare's own, but stays for the project's later sandboxes, where the spare's own
namespace would go with it. The spare is ready later by about one joined create (a task may be
waiting for that spare: the pool's `_wait_for_spare`), for much less CPU on a busy engine.

Only as many wait as holders will come (a burst does not all wait for one). Tasks go first: a spare
takes a holder that came free only while no task of its key waits for one, and a task counts only the
tasks ahead of it. A wait ends at its deadline: `LEAVING_WAIT` from now, or for a spare `MADE_WAIT`
from the start of its `join` (both of its waits together).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from runtime.backends.docker.holder_shelf import Holder, HolderKey, HolderShelf

LEAVING_WAIT = 0.5  # seconds a sandbox waits for a holder its project's last sandbox is leaving
# Seconds a spare waits, in all, for a holder being made: about a network set-up on a busy engine. Past
# it, it is made with a namespace of its own after all (and the holder, once made, serves a later one).
MADE_WAIT = 2.0


class HolderWaits:
    """Sandboxes waiting for a holder of their key, woken whenever one may have become free."""

    def __init__(self, shelf: HolderShelf) -> None:
        self._shelf = shelf
        self._signal = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: Counter[HolderKey] = Counter()  # tasks waiting, per key
        self._spares: Counter[HolderKey] = Counter()  # spares waiting, per key

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Waits happen on `loop` (an event belongs to the loop it was first awaited on)."""
        if loop is not self._loop:
            self._loop, self._signal = loop, asyncio.Event()

    def wake(self) -> None:
        """A holder may be free now (a removal or a making ended). On the waits' loop."""
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    def _coming(self, key: HolderKey, spare: bool) -> int:
        """Holders that will be free soon for such a waiter: leaving ones, and for a spare those being made."""
        return self._shelf.leaving_now(key) + (self._shelf.making_now(key) if spare else 0)

    def _ahead(self, key: HolderKey, spare: bool) -> int:
        return self._tasks[key] + (self._spares[key] if spare else 0)

    async def wait(self, key: HolderKey, spare: bool, deadline: float) -> Holder | None:
        """A holder of `key` that came free before `deadline` (time.monotonic()), taken; else None. A task
        waits only for leaving holders, at most LEAVING_WAIT; a spare for those being made too."""
        if self._ahead(key, spare) >= self._coming(key, spare):
            return None
        if not spare or not self._shelf.making_now(key):
            deadline = min(deadline, time.monotonic() + LEAVING_WAIT)
        waiting = self._spares if spare else self._tasks
        waiting[key] += 1
        try:
            while self._coming(key, spare) and (left := deadline - time.monotonic()) > 0:
                signal = self._signal
                if not spare or not self._tasks[key]:  # (a task waiting for this key goes first)
                    holder = self._shelf.take_free(key)  # (freed between the last look and this signal)
                    if holder is not None:
                        return holder
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), left)
            return self._shelf.take_free(key) if not spare or not self._tasks[key] else None
        finally:
            waiting[key] -= 1
            if waiting[key] <= 0:
                del waiting[key]
            if not spare:
                self.wake()  # a spare that gave way to this task looks again
