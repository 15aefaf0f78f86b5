"""Interpreter sessions: state kept between `run` calls by an interpreter that lives in the sandbox.

python: a real IPython kernel and its Jupyter-protocol client (`kernel_driver.py`, sent as the
text of a `python3 -c`); rich output follows the ecosystem's conventions: a matplotlib figure
comes back as `image/png`, a pandas DataFrame as `text/html` plus `text/plain`.
node / typescript: one V8 context for every cell (`node_driver.js`, as `node -e`); a cell's
Promise is awaited; typescript cells are type-stripped with the image's TypeScript.
ruby: one binding for every cell, as irb keeps one (`ruby_driver.rb`, as `ruby -e`).
java: one JShell, the JDK's REPL engine (`JshellDriver.java`, run by the source launcher).

Each driver is a command of the sandbox agent whose input stays open; this side sends one JSON
line per request and reads one answer per line (after PREFIX, wherever it starts in the line).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import InvalidRequest, SessionClosed
from runtime.sandbox.execution import ExecStream
from runtime.sandbox.interactive import Interactive
from runtime.sandbox.session_base import AgentSession

HERE = Path(__file__).parent
PREFIX = b"\x1eTAPK "
MAX_LINE = 64 * 1024 * 1024  # an answer with a few large figures fits; a stream without newlines does not
INTERRUPT_GRACE = 5.0


@dataclass(frozen=True)
class Driver:
    """How a session kind runs: its program, how a cell is interrupted, what each request adds."""

    command: str
    interrupt_by_signal: bool  # SIGINT to the driver (node: breakOnSigint), else an `interrupt` request
    flags: dict[str, Any] = field(default_factory=dict)


def driver_for(kind: str) -> Driver:
    """The driver of an interpreter session kind ("python", "node", "typescript", "ruby", "java")."""
    if kind == "python":
        return Driver(f"python3 -u -c {shlex.quote((HERE / 'kernel_driver.py').read_text())}", False)
    if kind == "ruby":
        return Driver(f"ruby -e {shlex.quote((HERE / 'ruby_driver.rb').read_text())}", True)
    if kind == "java":
        # The source launcher needs a file: the driver's text goes to the task's /tmp first.
        source = shlex.quote((HERE / "JshellDriver.java").read_text())
        return Driver(f"umask 077 && d=$(mktemp -d) && printf %s {source} > \"$d/JshellDriver.java\" "
                      f"&& exec java -XX:TieredStopAtLevel=1 \"$d/JshellDriver.java\"", True)
    node = f"node -e {shlex.quote((HERE / 'node_driver.js').read_text())}"
    return Driver(node, True, {"typescript": True} if kind == "typescript" else {})


@dataclass(frozen=True)
class RichOutput:
    mime: str  # e.g. image/png (base64 text, as Jupyter sends it), text/html
    data: str


@dataclass(frozen=True)
class CellError:
    name: str
    message: str
    traceback: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellResult:
    stdout: str
    stderr: str
    value: str | None  # the last expression, as a REPL shows it
    outputs: list[RichOutput]
    error: CellError | None
    duration: float
    timed_out: bool = False
    truncated: bool = False


class KernelSession(AgentSession):
    """One IPython kernel for the life of the session (or of its task)."""

    def __init__(self, kind: str, driver: Driver, task_id: str, stream: ExecStream, interactive: Interactive, *,
                 default_timeout: float, max_output_bytes: int,
                 on_result: Callable[[str, CellResult], None] | None = None) -> None:
        super().__init__(task_id)
        self.kind, self._driver = kind, driver
        self._stream, self._input = stream, interactive
        self._default_timeout, self._cap = default_timeout, max_output_bytes
        self._on_result = on_result
        self._ids = itertools.count(1)
        self._answers: dict[int | str, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers["ready"] = self._ready
        self._lock = asyncio.Lock()
        self._stderr = bytearray()

    async def start(self, timeout: float) -> None:
        self._reader = asyncio.ensure_future(self._read())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except (TimeoutError, SessionClosed) as err:
            why = self._ended or "no answer in time"
            await self.close()
            tail = self._stderr.decode("utf-8", "replace")[-1500:].strip()
            raise SessionClosed(f"the {self.kind} session did not start ({why}){': ' + tail if tail else ''}") from err

    async def _read(self) -> None:
        line = bytearray()
        try:
            async for chunk in self._stream:
                if chunk.stream == "stderr":
                    self._stderr = (self._stderr + chunk.data)[-8192:]
                    continue
                scanned = len(line)  # no newline before here: search the new bytes only
                line += chunk.data
                while (end := line.find(b"\n", scanned)) >= 0:
                    self._answer(bytes(line[:end]))
                    del line[:end + 1]
                    scanned = 0
                if len(line) > MAX_LINE:
                    self._ended = "the kernel driver sent an answer too large"
                    break
            end_result = self._stream.result
            self._ended = self._ended or (f"the kernel driver exited (status {end_result.exit_code})"
                                          if end_result is not None else "the kernel driver ended")
        except asyncio.CancelledError:
            self._ended = self._ended or "the session was closed"
            raise
        except Exception as err:  # the sandbox went away under the session
            self._ended = f"the session's sandbox failed: {err}"
        finally:
            for future in self._answers.values():
                if not future.done():
                    future.set_exception(SessionClosed(self._ended or "the session ended"))
            self._answers.clear()

    def _answer(self, line: bytes) -> None:
        at = line.find(PREFIX)  # a child process of a cell may have written to the same stream
        if at < 0:
            return
        try:
            message = json.loads(line[at + len(PREFIX):])
        except ValueError:
            return
        key: int | str = "ready" if message.get("ready") else message.get("id", -1)
        future = self._answers.pop(key, None)
        if future is not None and not future.done():
            future.set_result(message)

    def _send(self, message: dict[str, Any]) -> None:
        self._input.write((json.dumps(message) + "\n").encode())

    async def run(self, code: str, timeout: float | None = None) -> CellResult:
        """Run `code` as one cell; its output, the last expression's value, rich outputs, or its error."""
        if not isinstance(code, str):
            raise InvalidRequest("code must be a string")
        async with self._lock:
            self._check_open()
            rid = next(self._ids)
            answer = self._answers[rid] = asyncio.get_running_loop().create_future()
            t0 = time.monotonic()
            # `code_b64` too, for a driver with no JSON parser at hand (java's).
            self._send({"op": "execute", "id": rid, "code": code, "cap": self._cap, **self._driver.flags,
                        "code_b64": base64.b64encode(code.encode("utf-8", "surrogateescape")).decode()})
            limit = self._default_timeout if timeout is None else timeout
            timed_out = False
            try:
                message = await asyncio.wait_for(asyncio.shield(answer), limit)
            except asyncio.CancelledError:  # the caller gave up: the cell must not run on under the next
                with contextlib.suppress(Exception):
                    self._interrupt()
                raise
            except TimeoutError:
                timed_out = True
                self._interrupt()
                try:
                    message = await asyncio.wait_for(asyncio.shield(answer), INTERRUPT_GRACE)
                except TimeoutError:
                    self.abandon()  # the cell ignores interrupts: the session goes
                    message = {"error": {"name": "TimeoutError", "message": f"the cell ran past {limit} s and "
                                         "did not stop when interrupted; the session was ended"}}
            result = _cell(message, time.monotonic() - t0, timed_out)
            if self._on_result is not None:
                with contextlib.suppress(Exception):  # recording never breaks the session
                    self._on_result(code, result)
            return result

    async def interrupt(self) -> None:
        """Stop the running cell (python: KeyboardInterrupt); the state stays."""
        self._check_open()
        self._interrupt()

    def _interrupt(self) -> None:
        if self._driver.interrupt_by_signal:
            self._input.signal(signal.SIGINT)
        else:
            self._send({"op": "interrupt"})

    async def restart(self, timeout: float = 60.0) -> None:
        """A fresh interpreter state: every variable, import and definition is gone."""
        async with self._lock:
            self._check_open()
            rid = next(self._ids)
            answer = self._answers[rid] = asyncio.get_running_loop().create_future()
            self._send({"op": "restart", "id": rid})
            await asyncio.wait_for(answer, timeout)


def _cell(message: dict[str, Any], duration: float, timed_out: bool) -> CellResult:
    error = message.get("error")
    return CellResult(
        stdout=str(message.get("stdout", "")), stderr=str(message.get("stderr", "")),
        value=message.get("value") if isinstance(message.get("value"), str) else None,
        outputs=[RichOutput(str(mime), str(data)) for mime, data in message.get("outputs", [])],
        error=CellError(str(error.get("name", "")), str(error.get("message", "")),
                        [str(t) for t in error.get("traceback", [])]) if isinstance(error, dict) else None,
        duration=duration, timed_out=timed_out, truncated=bool(message.get("truncated")),
    )
