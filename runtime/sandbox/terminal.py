"""A terminal in a sandbox: a shell on a real pseudo-terminal, so vim, top, a REPL and colours work.

The sandbox agent runs the shell on a new pty (its controlling terminal); what the terminal
shows comes back as bytes, keystrokes go in as bytes, and `resize` sets its size (the shell's
foreground job gets SIGWINCH). It ends when the shell exits, on `close`, or with its task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from runtime.errors import InvalidRequest, SessionClosed
from runtime.sandbox.execution import ExecStream
from runtime.sandbox.interactive import Interactive

TERMINAL_SHELL = "/bin/bash -i"
CLOSE_GRACE = 2.0
BACKLOG = 4 * 1024 * 1024  # unread output kept; past it the oldest goes, as a terminal's scrollback would


class Terminal:
    """`async for data in terminal:` what it shows; `write` keystrokes; `resize(cols, rows)`; `close`."""

    def __init__(self, task_id: str, stream: ExecStream, interactive: Interactive) -> None:
        self.task_id = task_id
        self._stream, self._input = stream, interactive
        # Never blocks the agent's stream (a stalled reader there would stall the task's channel):
        # unread output is kept up to BACKLOG, oldest dropped first.
        self._output: deque[bytes] = deque()
        self._kept = 0
        self.dropped = 0
        self._changed = asyncio.Event()
        self.failure: str | None = None
        self._reader = asyncio.ensure_future(self._read())

    @property
    def closed(self) -> bool:
        return self._reader.done()

    def on_closed(self, callback: Callable[[], object]) -> None:
        self._reader.add_done_callback(lambda _: callback())

    @property
    def exit_code(self) -> int | None:
        result = self._stream.result
        return None if result is None else result.exit_code

    async def _read(self) -> None:
        try:
            async for chunk in self._stream:
                self._output.append(chunk.data)
                self._kept += len(chunk.data)
                while self._kept > BACKLOG and len(self._output) > 1:
                    old = self._output.popleft()
                    self._kept -= len(old)
                    self.dropped += len(old)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the sandbox went away under it: iteration ends, `failure` says why
            self.failure = str(err)
        finally:
            self._changed.set()

    async def started(self, timeout: float) -> int:
        waiter = asyncio.ensure_future(self._input.started.wait())
        await asyncio.wait({waiter, self._reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._input.pid is None:
            self.abandon()
            raise SessionClosed("the terminal's shell did not start")
        return self._input.pid

    async def write(self, data: str | bytes) -> None:
        """Keystrokes (bytes as typed: b"\x03" is Ctrl-C)."""
        self.send(data)

    def send(self, data: str | bytes) -> None:
        """`write`, from code that cannot await (a reader callback)."""
        if self.closed:
            raise SessionClosed(f"the terminal of task {self.task_id!r} is closed")
        self._input.write(data.encode() if isinstance(data, str) else data)

    async def resize(self, cols: int, rows: int) -> None:
        self.set_size(cols, rows)

    def set_size(self, cols: int, rows: int) -> None:
        if not (0 < cols < 10000 and 0 < rows < 10000):
            raise InvalidRequest(f"bad terminal size {cols}x{rows}")
        self._input.resize(cols, rows)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            while self._output:
                data = self._output.popleft()
                self._kept -= len(data)
                yield data
            if self._reader.done():
                return
            self._changed.clear()
            if not self._output:
                await self._changed.wait()

    async def close(self) -> None:
        """Hang up (SIGHUP to the shell), then end whatever is left."""
        import signal

        self._input.signal(signal.SIGHUP)
        await asyncio.wait({self._reader}, timeout=CLOSE_GRACE)
        self.abandon()
        await asyncio.wait({self._reader})

    def abandon(self) -> None:
        if not self._reader.done():
            self._reader.cancel()
