"""Shell sessions: one long-lived bash per session, whose `cd`, `export`, functions and venv stay.

Each `run` sends the shell one line: the command, base64-encoded and `eval`ed (so its text is
never parsed together with ours), then a call that prints an end marker with the command's
status on stdout and on stderr. The marker carries a random nonce made for that command, so
nothing the command prints can end it early (a log holding old markers included), and the next
command starts only once both streams reached it: output never interleaves between commands.
bash reads a pipe one byte at a time, so a command that reads stdin gets what `send_input`
sends, not the lines that follow it.

`interrupt` sends SIGINT to the shell's process group: the foreground command gets it, and the
command line it is part of (a loop, `a; b`) stops, as at a terminal: the command runs inside a
function whose SIGINT trap returns 130 from it, while the shell itself survives. Background jobs
ignore SIGINT as a non-interactive shell starts them (a program that resets its SIGINT handler,
as node does, gets it too: start servers with `start_process`). A command still running at its
`timeout` is interrupted; one that ignores that too ends the session (the agent kills everything
the shell started). The markers go to copies of the session's stdout and stderr made at its
start (fds 1021, 1022), so a command that redirects or closes its own streams cannot lose them.
The command runs in a function: a `declare` or `local` in it is local to that command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import InvalidRequest, SessionClosed
from runtime.sandbox.execution import ExecStream
from runtime.sandbox.interactive import Interactive
from runtime.sandbox.session_base import AgentSession

SHELL_ARGV = "/bin/bash --noprofile --norc"
# The end marker: MARK, the nonce, ':', the status, a newline. The shell prints a newline before
# it (the output may not end with one), which is not part of the output.
MARK = b"\x1eTAP:"
WINDOW = 4096  # bytes kept at the end of a trimmed buffer, where the next marker may be
INTERRUPT_GRACE = 3.0  # seconds a timed-out command gets to stop after SIGINT
# The shell survives SIGINT (the trap), a command is cut short by it (its function's trap), and
# each command's end is printed on both streams' saved copies.
PRELUDE = (
    "exec 1021>&1 1022>&2; trap : INT; "
    "__theappapp_run() { trap 'trap : INT; return 130' INT; eval \"$__THEAPPAPP_CMD\"; }; "
    "__theappapp_done() { local s=$?; trap : INT; builtin printf '\\n\\036TAP:%s:%s\\n' \"$1\" \"$s\" >&1021; "
    "builtin printf '\\n\\036TAP:%s:%s\\n' \"$1\" \"$s\" >&1022; }\n"
)


@dataclass(frozen=True)
class ShellResult:
    """What a command printed since the last result; `still_running` if it has not ended yet."""

    stdout: str
    stderr: str
    exit_code: int | None  # None while still running, or when the session ended under it
    duration: float  # since the command was sent
    still_running: bool = False
    timed_out: bool = False
    truncated: bool = False


class _Stream:
    """One of the shell's output streams: bytes since the last result, and the pending command's end."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.dropped = False
        self.final: bytes | None = None  # the pending command's output, once its marker came
        self.status: int | None = None

    def add(self, data: bytes, marker: bytes | None) -> None:
        start = max(0, len(self.buf) - len(MARK) - 64)
        self.buf += data
        if marker is not None and self.final is None:
            self._look(marker, start)
        if len(self.buf) > self.cap + WINDOW:  # bounded: keep the head for the result, the tail for a marker
            del self.buf[self.cap:len(self.buf) - WINDOW]
            self.dropped = True

    def _look(self, marker: bytes, start: int) -> None:
        i = self.buf.find(marker, start)
        if i < 0:
            return
        j = self.buf.find(b"\n", i + len(marker))
        if j < 0:
            return  # the rest of the marker is still on its way
        try:
            self.status = int(self.buf[i + len(marker):j])
        except ValueError:
            self.status = None
        self.final = bytes(self.buf[:i - 1 if i and self.buf[i - 1] == 0x0A else i])
        del self.buf[:j + 1]

    def take(self, marker: bytes) -> tuple[bytes, bool]:
        """The pending command's output: all of it once ended, else what cannot be part of its marker."""
        if self.final is not None:
            out, self.final = self.final, None
        else:
            # Hold back what may be the start of the marker (and the newline before it).
            keep = self.buf.rfind(MARK[:1])
            if keep < 0 or not marker.startswith(bytes(self.buf[keep:keep + len(marker)])):
                keep = len(self.buf)
            elif keep and self.buf[keep - 1] == 0x0A:
                keep -= 1
            out = bytes(self.buf[:keep])
            del self.buf[:keep]
        dropped, self.dropped = self.dropped or len(out) > self.cap, False
        return out[:self.cap], dropped


class ShellSession(AgentSession):
    """One bash for the life of the session (or of its task)."""

    kind = "shell"

    def __init__(self, task_id: str, stream: ExecStream, interactive: Interactive, *, default_timeout: float,
                 max_output_bytes: int, on_result: Callable[[str, ShellResult], None] | None = None) -> None:
        super().__init__(task_id)
        self._stream, self._input = stream, interactive
        self._default_timeout = default_timeout
        self._on_result = on_result
        self._out, self._err = _Stream(max_output_bytes), _Stream(max_output_bytes)
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending: tuple[bytes, float, str] | None = None  # marker, when sent, the command

    async def start(self, timeout: float) -> None:
        """Start the shell and wait until it answers its first (empty) command."""
        self._reader = asyncio.ensure_future(self._read())
        self._input.write(PRELUDE.encode())
        result = await self.run("true", timeout=timeout)
        if result.exit_code != 0:
            await self.close()
            raise SessionClosed(f"the shell did not start: {result.stderr.strip() or self._ended}")

    async def _read(self) -> None:
        try:
            async for chunk in self._stream:
                marker = self._pending[0] if self._pending else None
                (self._out if chunk.stream == "stdout" else self._err).add(chunk.data, marker)
                self._changed.set()
            end = self._stream.result
            code = end.exit_code if end is not None else None
            self._ended = f"the shell exited (status {code})" if code is not None else "the shell ended"
        except asyncio.CancelledError:
            self._ended = self._ended or "the session was closed"
            raise
        except Exception as err:  # the sandbox went away under the session
            self._ended = f"the session's sandbox failed: {err}"
        finally:
            self._changed.set()

    async def run(self, command: str, timeout: float | None = None, idle_timeout: float | None = None) -> ShellResult:
        """Run `command` in the shell; with `idle_timeout`, return early (`still_running`) once it prints
        nothing new for that long — then `read_more`, `send_input` or `interrupt`."""
        if not isinstance(command, str) or "\0" in command:
            raise InvalidRequest("command must be a string without NUL bytes")
        async with self._lock:
            self._check_open()
            if self._pending is not None:
                raise InvalidRequest("a command is still running in this session: read_more(), send_input() "
                                     "or interrupt() it first")
            nonce = secrets.token_hex(16)
            self._pending = (MARK + nonce.encode() + b":", time.monotonic(), command)
            encoded = base64.b64encode(command.encode("utf-8", "surrogateescape")).decode()
            self._input.write(f'__THEAPPAPP_CMD="$(builtin printf %s {encoded} | base64 -d)" __theappapp_run; '
                              f'__theappapp_done {nonce}\n'.encode())
            return await self._collect(timeout, idle_timeout)

    async def read_more(self, timeout: float | None = None, idle_timeout: float | None = None) -> ShellResult:
        """Go on waiting for the command that returned `still_running`; what it printed since."""
        async with self._lock:
            if self._pending is None:
                raise InvalidRequest("no command is running in this session")
            return await self._collect(timeout, idle_timeout)

    async def send_input(self, text: str | bytes) -> None:
        """Bytes to the running command's stdin (a newline is not added)."""
        self._check_open()
        self._input.write(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)

    async def interrupt(self, timeout: float = INTERRUPT_GRACE) -> ShellResult:
        """SIGINT to the foreground command; the session stays. Its result (130 if it died of it)."""
        async with self._lock:
            self._check_open()
            if self._pending is None:  # nothing to stop (and background jobs are left alone)
                return ShellResult("", "", None, 0.0)
            self._input.signal(signal.SIGINT)
            return await self._collect(timeout, None)

    async def _collect(self, timeout: float | None, idle_timeout: float | None) -> ShellResult:
        assert self._pending is not None
        marker = self._pending[0]
        deadline = time.monotonic() + (self._default_timeout if timeout is None else timeout)
        quiet_since = time.monotonic()
        while True:
            if self._out.final is not None and self._err.final is not None:
                return self._result(marker, done=True)
            now = time.monotonic()
            if self._ended is not None:
                return self._result(marker, done=True, gone=True)
            if now >= deadline:
                return await self._timed_out(marker)
            wait = deadline - now
            # One stream's marker in, the other's is a write away: never split a command's end.
            ending = self._out.final is not None or self._err.final is not None
            if idle_timeout is not None and not ending:
                if now - quiet_since >= idle_timeout:
                    return self._result(marker, done=False)
                wait = min(wait, idle_timeout - (now - quiet_since))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
                quiet_since = time.monotonic()

    async def _timed_out(self, marker: bytes) -> ShellResult:
        self._input.signal(signal.SIGINT)
        deadline = time.monotonic() + INTERRUPT_GRACE
        while not (self._out.final is not None and self._err.final is not None) and self._ended is None:
            if time.monotonic() >= deadline:
                self.abandon()  # it ignores SIGINT: the session goes, and with it everything it started
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
        return self._result(marker, done=True, timed_out=True, gone=self._ended is not None)

    def _result(self, marker: bytes, *, done: bool, timed_out: bool = False, gone: bool = False) -> ShellResult:
        assert self._pending is not None
        _, sent, command = self._pending
        out, out_dropped = self._out.take(marker)
        err, err_dropped = self._err.take(marker)
        status = self._out.status if done and not gone else None
        if done:
            self._pending = None
            self._out.status = self._err.status = None
        result = ShellResult(
            stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"), exit_code=status,
            duration=time.monotonic() - sent, still_running=not done, timed_out=timed_out,
            truncated=out_dropped or err_dropped,
        )
        if done and self._on_result is not None:
            with contextlib.suppress(Exception):  # recording never breaks the session
                self._on_result(command, result)
        return result
