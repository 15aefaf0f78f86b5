"""Syntax checks of large files in a child process, each with a deadline.

Parsing 1 MB takes tree-sitter or CPython's compiler 130-180 ms, all of it holding the GIL:
in the orchestrator's process that would stall every other thread, and the event loop, for
as long. In a child process the parse holds nothing of ours, runs beside the validator's own
pattern and secret scan, and a parser that crashes or hangs on hostile input takes down the
child, never the orchestrator. The child is started on first use, restarted after a failure,
and exits by itself when its connection closes, so it never outlives the process that made it.

Wire format (a socketpair, length-prefixed by `multiprocessing.connection`):
request `<checker>\\n<code as UTF-8>`, the checker named as in `syntax`: a built-in compiler's
name (`python`) or a tree-sitter grammar as `module:function`; reply JSON `{"findings": null}` when the checker is not
installed, `{"findings": [[rule_id, severity, line, column, message], ...]}`, or
`{"failed": "<how the parse ended>"}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from runtime.validation.findings import Finding
from runtime.validation.syntax import COMPILERS, TreeSitterChecker

DEFAULT_TIMEOUT = 10.0  # seconds; a 1 MB file parses in about 0.2 s
LOST_CHILD_GRACE = 1.0  # seconds a child whose connection broke gets to finish dying

# Passed to the child as they are: how to find and run Python, and the locale.
_KEPT_ENVIRONMENT = frozenset({"PATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR"})

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
        self._executor.submit(int).result()  # its thread, now: a submit never has to start one
        self._child: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._closed = False

    def submit(self, checker: str, code: str) -> Future[list[Finding] | None]:
        """Hand `code` to the child, for `checker` (a key of `COMPILERS` or a grammar as `module:function`),
        and return at once with the future answer.

        The future's result is as `TreeSitterChecker.check`'s: None when the grammar is not
        installed. Raises OSError when no child process can be started, RuntimeError once closed.
        """
        request = checker.encode() + b"\n" + code.encode("utf-8", "surrogatepass")
        self._turn.acquire()
        try:
            if self._closed:
                raise RuntimeError("this SyntaxProcess is closed")
            connection = self._connected()
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
        except BaseException:
            # Anything else before the hand-off (an interrupt mid-send, an executor shut down at
            # exit): the child may hold half a request, so it goes; the turn is free again.
            self._stop()
            self._turn.release()
            raise

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
        if self._child is not None and _peek_exit(self._child.pid) is not None:
            log.warning("syntax checker process %s between checks; starting another", self._stop())
        if self._connection is None:
            ours, theirs = socket.socketpair()
            with ours, theirs:
                self._child = subprocess.Popen(
                    [sys.executable, "-c",
                     f"from {__name__} import serve; serve({theirs.fileno()}, {self.timeout!r})"],
                    pass_fds=(theirs.fileno(),),
                    # It parses untrusted input: none of our pipes (a reader of them would wait for
                    # it too) and none of our secrets; failures come back in replies.
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=_child_environment(),
                    start_new_session=True,  # a group of its own: a stop kills all of it
                )
                self._connection = Connection(ours.detach())
        return self._connection

    def _stop(self, *, lost: bool = False) -> str:
        """Close the connection and kill and reap the child; says how the child ended.

        `lost`: the connection broke, so the child is dying or dead; give it a moment to
        finish, so its exit status can say why. The child is reaped only after the kill, so
        its pid (and group id) cannot have passed to another process when the kill is sent.
        """
        connection, child = self._connection, self._child
        self._connection = self._child = None
        if connection is not None:
            connection.close()
        if child is None:
            return "was not running"
        exited = _peek_exit(child.pid)
        deadline = time.monotonic() + (LOST_CHILD_GRACE if lost else 0.0)
        while exited is None and time.monotonic() < deadline:
            time.sleep(0.01)
            exited = _peek_exit(child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if exited is None:
            return "was stopped"
        return f"died of {_signal_name(-exited)}" if exited < 0 else f"exited with code {exited}"


def _peek_exit(pid: int) -> int | None:
    """The child's return code once it has ended (negative: a signal), None while it runs; never reaps it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _signal_name(number: int) -> str:
    try:
        return f"signal {signal.Signals(number).name}"
    except ValueError:  # real-time signals have no name
        return f"signal {number}"


def _crashed(how: str) -> Finding:
    return Finding("syntax.crashed", "warning", 0, 0, f"the syntax checker {how}; syntax not checked")


def _child_environment() -> dict[str, str]:
    """What the child needs to start Python and import `runtime`, and nothing else of ours."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    kept = {k: v for k, v in os.environ.items() if k in _KEPT_ENVIRONMENT}
    return {**kept, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


def serve(fd: int, timeout: float = DEFAULT_TIMEOUT) -> None:
    """The child's loop: answer requests until the other end closes.

    Each parse runs under a CPU-time limit just over `timeout`: if the validator's process
    dies while a hostile input keeps the parser busy, the kernel ends the parse, and with it
    this process, instead of leaving it spinning on its own.
    """
    connection = Connection(fd)
    tree_sitter = TreeSitterChecker()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a parse the kernel stops leaves no core file
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            request = connection.recv_bytes()
        except (EOFError, OSError):
            return  # the validator closed or its process died: nothing left to serve
        used = resource.getrusage(resource.RUSAGE_SELF)
        allowed = math.ceil(used.ru_utime + used.ru_stime + timeout) + 1
        if cpu_hard != resource.RLIM_INFINITY:
            allowed = min(allowed, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (allowed, cpu_hard))
        checker_name, _, body = request.partition(b"\n")
        parsed = None
        try:
            code, checker = body.decode("utf-8", "surrogatepass"), checker_name.decode()
            compiler = COMPILERS.get(checker)
            if compiler is not None:
                findings: list[Finding] | None = compiler(code)
            else:  # a grammar: tree-sitter imports nothing but a well-formed `module:function`
                parsed = tree_sitter.parse(code, checker)
                findings = None if parsed is None else tree_sitter.findings(*parsed)
            reply: dict[str, object] = {
                "findings": None if findings is None else [dataclasses.astuple(f) for f in findings]
            }
        except Exception as err:  # reported to the validator, which warns
            reply = {"failed": f"failed: {type(err).__name__}: {err}"}
        try:
            connection.send_bytes(json.dumps(reply).encode())
        except OSError:
            return
        # Only now, with the reply sent: freeing a large tree takes a tenth of its parse time.
        del parsed
