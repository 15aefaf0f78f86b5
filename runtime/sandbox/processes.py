"""Background processes: a dev server started now, its logs read and its stdin fed later, killed on demand.

Each is a command the sandbox agent runs with its input left open and no timeout short of the
task's life; a reader keeps its output in a ring buffer (oldest chunks dropped past the cap,
and counted) so `output` can replay it from the start of what is kept. They die with the task.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from runtime.errors import InvalidRequest
from runtime.sandbox.execution import ExecResult, ExecStream, OutputChunk
from runtime.sandbox.interactive import Interactive

RING_BYTES = 1024 * 1024  # output kept per process


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    command: str
    started_at: float  # epoch seconds
    running: bool
    exit_code: int | None
    dropped_bytes: int = 0  # output that fell out of the ring buffer


def signal_number(name: str | int) -> int:
    """"TERM", "SIGTERM", 15 -> 15; anything else is an `InvalidRequest`."""
    if isinstance(name, int) and not isinstance(name, bool):
        number = name
    else:
        text = str(name).upper()
        try:
            number = int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
        except KeyError:
            raise InvalidRequest(f"unknown signal {name!r}") from None
    if not 0 < number < signal.NSIG:
        raise InvalidRequest(f"unknown signal {name!r}")
    return number


class BackgroundProcess:
    """One process, its input, and the output it printed (up to RING_BYTES of it)."""

    def __init__(self, name: str, command: str, stream: ExecStream, interactive: Interactive) -> None:
        self.name, self.command = name, command
        self.started_at = time.time()
        self._stream, self._input = stream, interactive
        self._ring: deque[OutputChunk] = deque()
        self._kept = 0
        self.dropped = 0
        self._seen = 0  # chunks ever added: followers find their place by it
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] = asyncio.ensure_future(self._read())
        self.failure: str | None = None

    async def started(self, timeout: float) -> int:
        """The pid inside the sandbox, once the agent says the process runs."""
        waiter = asyncio.ensure_future(self._input.started.wait())
        await asyncio.wait({waiter, self._reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._input.pid is None:
            self._reader.cancel()
            raise InvalidRequest(f"process {self.name!r} did not start: {self.failure or 'no answer in time'}")
        return self._input.pid

    @property
    def pid(self) -> int:
        return self._input.pid or 0

    @property
    def running(self) -> bool:
        return not self._reader.done()

    def info(self) -> ProcessInfo:
        result = self._stream.result
        return ProcessInfo(pid=self.pid, name=self.name, command=self.command, started_at=self.started_at,
                           running=self.running, exit_code=None if result is None else result.exit_code,
                           dropped_bytes=self.dropped)

    async def _read(self) -> None:
        try:
            async for chunk in self._stream:
                self._ring.append(chunk)
                self._kept += len(chunk.data)
                self._seen += 1
                while self._kept > RING_BYTES and len(self._ring) > 1:
                    old = self._ring.popleft()
                    self._kept -= len(old.data)
                    self.dropped += len(old.data)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the sandbox went away under it
            self.failure = str(err)
        finally:
            self._changed.set()

    async def output(self, follow: bool = False) -> AsyncIterator[OutputChunk]:
        """What is kept, from its start; with `follow`, then what comes, until the process ends."""
        position = self._seen - len(self._ring)  # the index of the oldest chunk kept
        while True:
            first = self._seen - len(self._ring)
            position = max(position, first)  # chunks dropped while we waited are gone
            for chunk in list(self._ring)[position - first:]:
                position += 1
                yield chunk
            if not follow or not self.running:
                if self.running or position >= self._seen:
                    return
                continue
            self._changed.clear()
            if position >= self._seen:
                await self._changed.wait()

    def on_exit(self, callback: Callable[[ExecResult], object]) -> None:
        """Call `callback` with the process's end (killed with its task: no exit code)."""

        def ended(_: object) -> None:
            if self._stream.result is not None:
                callback(self._stream.result)

        self._reader.add_done_callback(ended)

    def send_stdin(self, data: str | bytes) -> None:
        if not self.running:
            raise InvalidRequest(f"process {self.pid} has exited")
        self._input.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)

    def kill(self, signum: int) -> None:
        """`signum` to the process's group (it and what it started in it)."""
        if self.running:
            self._input.signal(signum)

    async def wait(self, timeout: float | None) -> ProcessInfo:
        await asyncio.wait({self._reader}, timeout=timeout)
        return self.info()

    def abandon(self) -> None:
        """The task is going away: stop reading (the agent kills the process tree)."""
        if not self._reader.done():
            self._reader.cancel()
