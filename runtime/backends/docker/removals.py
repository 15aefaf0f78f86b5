"""Containers being removed: a removal waits for the container's rename in flight, and no rename starts after it.

A warm hand-over renames the spare to the task's name in the background, so a task destroyed at
once (a create then a destroy, or one short command) has its removal sent while the rename may
still be on its way. Docker 20.10 does not order the two: a rename that lands during the removal
writes the container back into the engine's listing, where it stays `Removal In Progress` (gone
to `inspect`) and keeps the project's volume "in use" until the daemon restarts. Seen here twice:
with renames slowed by 0.1 s (as on a busy engine; 1 ghost in ~150 tasks), and with create then
destroy at once (1 in a few hundred). Rare, but nothing short of a daemon restart undoes it.
Renames of containers with their own network endpoint are kept apart from removals by the gate
(gate.py), but one in a kept network namespace (netns.py) has no endpoint and passes it.

The rename takes a few milliseconds; the removal waits for its engine call to end (not for the
coroutine that awaited it, which a cancellation or deadline ends early), at most the API timeout.
The agent channel of a container being removed is not opened again either (`removing`), for
whatever still asks for it (a lease sent at hand-over): it would attach to a dying container.
"""

from __future__ import annotations

import threading
from collections import Counter


class Removals:
    """Called from the event loop and from the engine's worker threads (a removal's end, a holder's
    removal), hence the lock. A container may be removed twice at once (a destroy and a failed
    rename's clean-up): it counts as being removed until both have ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._removing: Counter[str] = Counter()
        self._renaming: dict[str, threading.Event] = {}

    def removing(self, container_id: str) -> bool:
        with self._lock:
            return self._removing[container_id] > 0

    def rename_starts(self, container_id: str) -> threading.Event | None:
        """The rename's event, to set when its engine call ends; None: being removed, no rename."""
        with self._lock:
            if self._removing[container_id] > 0:
                return None
            done = threading.Event()
            self._renaming[container_id] = done
            return done

    def rename_ended(self, container_id: str, done: threading.Event) -> None:
        done.set()
        with self._lock:
            if self._renaming.get(container_id) is done:
                del self._renaming[container_id]

    def removal_starts(self, container_id: str) -> threading.Event | None:
        """Marks it as being removed; the event of its rename in flight, for the removal to wait for."""
        with self._lock:
            self._removing[container_id] += 1
            return self._renaming.get(container_id)

    def removal_ended(self, container_id: str) -> None:
        with self._lock:
            self._removing[container_id] -= 1
            if self._removing[container_id] <= 0:
                del self._removing[container_id]
