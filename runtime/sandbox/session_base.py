"""What every session has in common: a reader of one long-lived agent exec, and how the session ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from runtime.errors import SessionClosed


class AgentSession:
    """A session over one long-lived command of the sandbox agent; subclasses read it in `_reader`."""

    kind: str

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._ended: str | None = None  # why the session is over
        self._reader: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._ended is not None

    def on_closed(self, callback: Callable[[], object]) -> None:
        """Call `callback` once the session has ended (closed, exited, or its task gone)."""
        assert self._reader is not None
        self._reader.add_done_callback(lambda _: callback())

    async def close(self) -> None:
        """End the session and everything it started (background jobs included: the agent kills them)."""
        if self._reader is None:
            return
        self.abandon()
        await asyncio.wait({self._reader})

    def abandon(self) -> None:
        """Stop at once (the task is going away): the agent kills everything the session started."""
        self._ended = self._ended or "the session was closed"
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    def _check_open(self) -> None:
        if self._ended is not None:
            raise SessionClosed(f"{self.kind} session of task {self.task_id!r} is closed: {self._ended}")
