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

The rename takes a few milliseconds; the removal waits at most the engine's API timeout for it.
The agent channel of a container being removed is not opened again either (`removing`), for
whatever still asks for it (a lease sent at hand-over): it would attach to a dying container.
"""

from __future__ import annotations

import threading


class Removals:
    def __init__(self) -> None:
        self._removing: set[str] = set()
        self._renaming: dict[str, threading.Event] = {}

    def removing(self, container_id: str) -> bool:
        return container_id in self._removing

    def rename_starts(self, container_id: str) -> threading.Event | None:
        """The rename's event, to set when it ends; None: the container is being removed, no rename."""
        if container_id in self._removing:
            return None
        done = threading.Event()
        self._renaming[container_id] = done
        return done

    def rename_ended(self, container_id: str, done: threading.Event) -> None:
        done.set()
        if self._renaming.get(container_id) is done:
            del self._renaming[container_id]

    def removal_starts(self, container_id: str) -> threading.Event | None:
        """Marks it removed from now on; the event of its rename in flight, for the removal to wait for."""
        self._removing.add(container_id)
        return self._renaming.get(container_id)

    def removal_ended(self, container_id: str) -> None:
        self._removing.discard(container_id)
