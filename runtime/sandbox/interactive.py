"""Input for a command that keeps running: bytes to its stdin, the end of its input, signals to
its process group — what sessions and background processes drive their long-lived commands with.

Engine-neutral: the caller puts, a backend's exec takes (`next`) and carries each to the command.
The backend also reports the command's pid when it has started.
"""

from __future__ import annotations

import asyncio

# ("stdin", bytes) | ("close", None) | ("signal", signum) | ("resize", (cols, rows))
Input = tuple[str, bytes | int | tuple[int, int] | None]


class Interactive:
    """A command's input channel, written by its owner and read by the backend running it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Input] = asyncio.Queue()
        self.pid: int | None = None
        self.started = asyncio.Event()
        self.closed = False

    def write(self, data: bytes) -> None:
        if data and not self.closed:
            self._queue.put_nowait(("stdin", data))

    def close(self) -> None:
        """End of input (the command reads end-of-file once it has read what came before)."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(("close", None))

    def signal(self, signum: int) -> None:
        self._queue.put_nowait(("signal", signum))

    def resize(self, cols: int, rows: int) -> None:
        """A terminal's new size (commands run on a pseudo-terminal only)."""
        self._queue.put_nowait(("resize", (cols, rows)))

    async def next(self) -> Input:
        return await self._queue.get()

    def on_started(self, pid: int) -> None:
        """The backend says the command runs, as `pid` inside the sandbox."""
        self.pid = pid
        self.started.set()
