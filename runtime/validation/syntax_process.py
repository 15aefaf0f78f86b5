"""Syntax checks of large files in a child process, each with a deadline.

Parsing 1 MB takes tree-sitter or CPython's compiler 130-180 ms, all of it holding the GIL:
in the orchestrator's process that would stall every other thread, and the event loop, for
as long. In a child process the parse holds nothing of ours, runs beside the validator's own
pattern and secret scan, and a parser that crashes or hangs on hostile input takes down the
child, never the orchestrator. The child is started on first use, restarted after a failure,
and exits by itself when its connection closes, so it never outlives the process that made it.

Wire format (a socketpair, length-prefixed by `multiprocessing.connection`):
request `<checker>\\n<code as UTF-8>`; reply JSON `{"findings": null}` when the checker is not
installed, `{"findings": [[rule_id, severity, line, column, message], ...]}`, or
`{"failed": "<how the parse ended>"}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from runtime.validation.findings import Finding
from runtime.validation.syntax import TreeSitterChecker, check_python

DEFAULT_TIMEOUT = 10.0  # seconds; a 1 MB file parses in about 0.2 s
LOST_CHILD_GRACE = 1.0  # seconds a child whose connection broke gets to finish dying
PYTHON = "python"  # the checker name for CPython's compiler; anything else is a tree-sitter grammar

log = logging.getLogger(__name__)


class SyntaxProcess:
    """One child process serving syntax checks, one at a time.

    (Forking a fresh process per check, to skip freeing the tree, was measured slower: the
    fork's first touch of every new page costs more than the free it saves.)
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        # Held from a request's send until its reply is read: the child answers in order.
        self._turn = threading.Lock()
        # Waits for replies, so the caller can scan meanwhile; waiting on a socket releases the GIL.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syntax-process")
        self._child: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._closed = False

    def submit(self, checker: str, code: str) -> Future[list[Finding] | None]:
        """Hand `code` to the child and return at once with the future answer.

        The future's result is as `TreeSitterChecker.check`'s: None when the grammar is not
        installed. Raises OSError when no child process can be started.
        """
        request = checker.encode() + b"\n" + code.encode("utf-8", "surrogatepass")
        self._turn.acquire()
        try:
            if self._closed:
                raise RuntimeError("this SyntaxProcess is closed")
            connection = self._connected()
        except BaseException:
            self._turn.release()
            raise
        try:
            # In the caller's thread, before it starts scanning: a background thread would have
            # to win the GIL from the scan's long regex calls for every buffer of the 1 MB.
            connection.send_bytes(request)
        except OSError:
            failed: Future[list[Finding] | None] = Future()
            failed.set_result([_crashed(self._stop(lost=True))])
            self._turn.release()
            return failed
        return self._executor.submit(self._receive, connection)

    @property
    def pid(self) -> int | None:
        """The child's pid while one is running (for tests and diagnostics)."""
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        """Stop the child (after the check in flight, if any) and the thread; later submits are refused."""
        with self._turn:
            self._closed = True
            self._stop()
        self._executor.shutdown()

    def _receive(self, connection: Connection) -> list[Finding] | None:
        try:
            if not connection.poll(self.timeout):
                self._stop()
                return [
                    Finding(
                        "syntax.timeout", "warning", 0, 0,
                        f"the syntax check took over {self.timeout:g} s and was stopped; syntax not checked",
                    )
                ]
            reply = connection.recv_bytes()
        except (EOFError, OSError):
            return [_crashed(self._stop(lost=True))]
        finally:
            self._turn.release()
        decoded = json.loads(reply)
        if "failed" in decoded:
            return [_crashed(decoded["failed"])]
        return None if decoded["findings"] is None else [Finding(*item) for item in decoded["findings"]]

    def _connected(self) -> Connection:
        if self._child is not None and self._child.poll() is not None:
            log.warning("syntax checker process exited (code %s) between checks; starting another",
                        self._child.returncode)
            self._stop()
        if self._connection is None:
            ours, theirs = socket.socketpair()
            with ours, theirs:
                self._child = subprocess.Popen(
                    [sys.executable, "-c", f"from {__name__} import serve; serve({theirs.fileno()})"],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    env=_child_environment(),
                    start_new_session=True,  # a group of its own, so a stop takes its forks along
                )
                self._connection = Connection(ours.detach())
        return self._connection

    def _stop(self, *, lost: bool = False) -> str:
        """Close the connection and kill and reap the child; says how the child ended.

        `lost`: the connection broke, so the child is dying or dead; give it a moment to
        finish, so its exit status can say why.
        """
        connection, child = self._connection, self._child
        self._connection = self._child = None
        if connection is not None:
            connection.close()
        if child is None:
            return "was not running"
        exited = child.poll()
        if exited is None and lost:
            with contextlib.suppress(subprocess.TimeoutExpired):
                exited = child.wait(LOST_CHILD_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the server and anything it may have started
        child.wait()
        if exited is None:
            return "was stopped"
        return f"died of signal {signal.Signals(-exited).name}" if exited < 0 else f"exited with code {exited}"


def _crashed(how: str) -> Finding:
    return Finding("syntax.crashed", "warning", 0, 0, f"the syntax checker {how}; syntax not checked")


def _child_environment() -> dict[str, str]:
    """This environment, with the directory holding the `runtime` package first on the path."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


def serve(fd: int) -> None:
    """The child's loop: answer requests until the other end closes."""
    connection = Connection(fd)
    tree_sitter = TreeSitterChecker()
    while True:
        try:
            request = connection.recv_bytes()
        except EOFError:
            return  # the validator closed or its process died: nothing left to serve
        checker, _, body = request.partition(b"\n")
        parsed = None
        try:
            code = body.decode("utf-8", "surrogatepass")
            if checker.decode() == PYTHON:
                findings: list[Finding] | None = check_python(code)
            else:
                parsed = tree_sitter.parse(code, checker.decode())
                findings = None if parsed is None else tree_sitter.findings(*parsed)
            reply: dict[str, object] = {
                "findings": None if findings is None else [dataclasses.astuple(f) for f in findings]
            }
        except Exception as err:  # reported to the validator, which warns
            reply = {"failed": f"failed: {type(err).__name__}: {err}"}
        connection.send_bytes(json.dumps(reply).encode())
        # Only now, with the reply sent: freeing a large tree takes a tenth of its parse time.
        del parsed
