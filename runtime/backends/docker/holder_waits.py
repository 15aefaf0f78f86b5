"""Waiting for a network namespace holder that is not free yet but soon will be (netns.py).

Two kinds are worth a wait. A holder *leaving*: its sandbox is being removed (back-to-back tasks, a
hand-over's replacement), free within ~0.1-0.2 s, where a namespace of the sandbox's own would cost
~0.3 s of CPU more. A holder *being made* (warm spares only): it costs the same network set-up as a
namespace of the spare's own, but stays for the project's later sandboxes, where the spare's own
namespace would go with it; and a spare is made in the background, so its wait is no task's.

Only as many wait as holders will come (a burst does not all wait for one); each waits at most
`LEAVING_WAIT`, or `MADE_WAIT` while holders are being made.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from runtime.backends.docker.holder_shelf import Holder, HolderKey, HolderShelf

LEAVING_WAIT = 0.5  # seconds a sandbox waits for a holder its project's last sandbox is leaving
# Seconds a spare waits for a holder being made: about a network set-up on a busy engine. Past it, it is
# made with a namespace of its own after all (and the holder, once made, serves a later one).
MADE_WAIT = 3.0


class HolderWaits:
    """Sandboxes waiting for a holder of their key, woken whenever one may have become free."""

    def __init__(self, shelf: HolderShelf) -> None:
        self._shelf = shelf
        self._signal = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: Counter[HolderKey] = Counter()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Waits happen on `loop` (an event belongs to the loop it was first awaited on)."""
        if loop is not self._loop:
            self._loop, self._signal = loop, asyncio.Event()

    def wake(self) -> None:
        """A holder may be free now (a removal or a making ended). On the waits' loop."""
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    def coming(self, key: HolderKey, made_too: bool) -> int:
        return self._shelf.leaving_now(key) + (self._shelf.making_now(key) if made_too else 0)

    async def wait(self, key: HolderKey, made_too: bool) -> Holder | None:
        """A holder of `key` that came free in time, taken; else None. `made_too`: holders being made count."""
        if self._waiting[key] >= self.coming(key, made_too):
            return None
        patience = MADE_WAIT if made_too and self._shelf.making_now(key) else LEAVING_WAIT
        deadline = time.monotonic() + patience
        self._waiting[key] += 1
        try:
            while self.coming(key, made_too) and (left := deadline - time.monotonic()) > 0:
                signal = self._signal
                holder = self._shelf.take_free(key)  # (freed between the last look and this signal)
                if holder is not None:
                    return holder
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), left)
            return self._shelf.take_free(key)
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]
