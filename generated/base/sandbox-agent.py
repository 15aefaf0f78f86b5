# DO NOT EDIT: a copy of runtime/agent/sandbox_agent.py, made by `nox -s render`.
"""sandbox-agent: the process inside every sandbox that runs commands and moves files for the manager.

It is the container's main process (under the init that reaps zombies), runs as the sandbox
user with no extra rights, and talks one framed protocol over its stdin and stdout — on
Docker the container's attach stream, so no `docker exec` is paid per command. Standard
library only, one file, for the Python of every Debian suite the images build on (3.11+):
the manager imports the same file for the protocol (`encode`, `FrameBuffer`).

Frames: a 6-byte prefix (big-endian u32 length of the rest, u16 length of the header), a
JSON header object, then a binary payload (output, file contents). Headers are at most
60 KiB and payloads 1 MiB; anything else ends the connection as malformed.

Requests carry an `op` and an `id`; answers carry a `type` and the request's `id`:

    hello                          -> hello {version, pid}
    ping                           -> pong
    exec {argv, env, cwd, timeout, cap, stdin, pty?: {rows, cols}}
                                   -> started {pid}, out {stream: 1|2} + bytes ..., then exit {code,
                                      signal, duration, timed_out, out_bytes, err_bytes, truncated}
    stdin + bytes / stdin_close    (no answer)
    signal {signal}                the signal to the command's process group (no answer)
    resize {rows, cols}            a `pty` exec's terminal size (no answer)
    cancel                         -> the exec ends with timed_out
    write {path, last} + bytes     -> done (after the last chunk)
    read {path, limit}             -> data + bytes ..., then done {size}
    list {path, limit}             -> entries + JSON [[name, type, size, mtime], ...]
    lease {seconds}                -> leased  (exit unless the manager sends something within `seconds`;
                                      0 ends the lease; `sandbox-agent --lease SECONDS` starts with one)
    any failure                    -> error {kind, message}  (kind: InvalidPath, FileMissing, ...)

A command runs in its own session with the environment marker THEAPPAPP_EXEC. On timeout or
cancel, everything it started dies: its session and process group, every process that still
holds its output pipes or carries its marker, and all their descendants (double-forked and
setsid daemons included), in rounds until none is left. Output past `cap` bytes per stream is
counted, not sent. Paths are relative to /workspace; none may climb out with '..' and no
symlink may lead a path out of it.

    python3 -I -S sandbox-agent.py       serve on stdin/stdout (the container's main process)
    python3 -I -S sandbox-agent.py health  ask the running agent for a pong (the image's HEALTHCHECK)
"""

from __future__ import annotations

# The standard library's C modules where its Python ones would cost every sandbox's start: `json`,
# `socket`, `signal`, `selectors` and `threading` pull in `re`, `enum` and `collections`, about
# 16 ms of CPU per container on a 2-core host (half the agent's start), for nothing the agent uses.
import _queue
import _socket
import _thread
import errno
import heapq
import os
import select
import stat
import struct
import sys
import time
from _json import encode_basestring_ascii, make_encoder, make_scanner

TYPE_CHECKING = False  # typing itself costs milliseconds at every start; mypy reads the names below
if TYPE_CHECKING:
    import signal as _signal  # what `signal` re-exports; `_signal` has no type stubs of its own
    from collections.abc import Callable
    from typing import Any
else:
    import _signal

VERSION = 1
PREFIX = struct.Struct(">IH")
MAX_HEADER = 60 * 1024  # the prefix holds up to 65535
MAX_PAYLOAD = 1 << 20
WORKSPACE = os.environ.get("THEAPPAPP_WORKSPACE", "/workspace")
HEALTH_SOCKET = "\0theappapp-sandbox-agent"  # abstract: no file; one per network namespace, so see below
MARKER = "THEAPPAPP_EXEC"
READ = 64 * 1024
KILL_ROUNDS = 100
DRAIN_AFTER_KILL = 0.5  # seconds to collect output still buffered once the tree is dead
HIGH_WATER = 4 << 20  # bytes queued for the manager past which command output is no longer read
EXIT_DRAIN = 0.5  # seconds after a command exits for output still held open by its background processes
MAX_LIST = 10_000


class ProtocolError(Exception):
    """A frame that breaks the protocol: the connection it came on is closed."""


class RequestError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _JsonSyntax:
    """What CPython's C scanner reads off `json.JSONDecoder`: `json.loads`'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan_json = make_scanner(_JsonSyntax())  # type: ignore[arg-type]  # it reads these attributes


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object) -> str:
    """`json.dumps(value, separators=(",", ":"))`, by the same C encoder `json` uses."""
    return "".join(make_encoder({}, _not_json, encode_basestring_ascii, None, ":", ",", False, False, True)(value, 0))


def loads(data: bytes) -> Any:
    """`json.loads` of UTF-8 text with nothing around the value (as `dumps` writes), or ValueError."""
    text = data.decode("utf-8")
    try:
        value, end = _scan_json(text, 0)
    except StopIteration as stop:
        raise ValueError(f"no JSON value at character {stop.value}") from None
    except RecursionError:  # a peer's deeply nested header is malformed, not the reader's crash
        raise ValueError("JSON nested too deeply") from None
    except SystemError:
        # Python 3.11's scanner reports a syntax error through `json.decoder`, found only if imported
        # already (3.12 imports it): paid once, for the header that is refused, then the same message.
        if "json.decoder" in sys.modules:
            raise
        import json.decoder  # noqa: F401
        return loads(data)
    if end != len(text):
        raise ValueError(f"extra data at character {end}")
    return value


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = dumps(header).encode("utf-8")
    if len(head) > MAX_HEADER or len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"frame too large: header {len(head)}, payload {len(payload)} bytes")
    return PREFIX.pack(len(head) + len(payload), len(head)) + head + payload


class FrameBuffer:
    """Bytes in, whole frames out; never holds more than one frame's worth beyond what it was given."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._data += data
        frames = []
        while len(self._data) >= PREFIX.size:
            total, head_len = PREFIX.unpack_from(self._data)
            if head_len > MAX_HEADER or head_len > total or total - head_len > MAX_PAYLOAD:
                raise ProtocolError(f"malformed frame prefix (length {total}, header {head_len})")
            if len(self._data) < PREFIX.size + total:
                break
            body = bytes(self._data[PREFIX.size : PREFIX.size + total])
            del self._data[: PREFIX.size + total]
            try:
                header = loads(body[:head_len])
            except ValueError as err:
                raise ProtocolError(f"frame header is not JSON: {err}") from err
            if not isinstance(header, dict):
                raise ProtocolError("frame header is not a JSON object")
            frames.append((header, body[head_len:]))
        return frames

    @property
    def pending(self) -> int:
        return len(self._data)


# -- paths ----------------------------------------------------------------------------------------


def resolve(path: object, *, allow_root: bool = False, must_exist: bool = False) -> str:
    """The absolute path of a relative one inside the workspace, links followed; RequestError otherwise."""
    if not isinstance(path, str) or any(c in path for c in "\0\n\r"):
        raise RequestError("InvalidPath", f"path {path!r} is not a plain relative path")
    if path.startswith("/"):
        raise RequestError("InvalidPath", f"path {path!r} is absolute; give it relative to the workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RequestError("InvalidPath", f"path {path!r} climbs out with '..'")
    if not parts and not allow_root:
        raise RequestError("InvalidPath", f"path {path!r} names the workspace itself, not a file")
    full = os.path.join(WORKSPACE, *parts)
    real = os.path.realpath(full)
    if real != WORKSPACE and not real.startswith(WORKSPACE + "/"):
        raise RequestError("InvalidPath", f"{path!r} leads outside {WORKSPACE} through a symlink (to {real})")
    if must_exist and not os.path.lexists(real):
        raise RequestError("FileMissing", f"{path!r} does not exist in the workspace")
    return real


# -- killing a command's whole tree -----------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, process group, session) of a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text.rsplit(b")", 1)[-1].split()
    if len(fields) < 4 or fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[3])


def _belongs(pid: int, marker: bytes, pipes: set[str]) -> bool:
    """Carries the command's marker, or holds one of its pipes."""
    # try/except rather than contextlib.suppress throughout: importing contextlib costs the
    # agent's start milliseconds.
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            if marker in handle.read().split(b"\0"):
                return True
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in pipes:
                return True
        except OSError:
            continue
    return False


def kill_tree(main: int, marker: bytes, pipes: set[str]) -> int:
    """SIGKILL everything the command started, in rounds (a fork bomb's children appear between them)."""
    me, killed = os.getpid(), 0
    for _ in range(KILL_ROUNDS):
        table = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                info = _stat(int(name))
                if info is not None:
                    table[int(name)] = info
        victims = {pid for pid, (_, group, session) in table.items() if main in (pid, group, session)}
        victims |= {pid for pid in table if pid not in victims and _belongs(pid, marker, pipes)}
        grew = True
        while grew:  # and every descendant of those
            more = {pid for pid, (ppid, _, _) in table.items() if ppid in victims and pid not in victims}
            victims |= more
            grew = bool(more)
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, _signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


# -- the event loop -----------------------------------------------------------------------------------
#
# A few dozen lines on epoll rather than asyncio: the agent starts in every container, and
# importing asyncio alone costs ~50 ms of CPU there (ssl, logging, concurrent.futures, inspect),
# paid again for every spare and every cold task on a machine whose cores the engine needs.
# (`selectors` would cost ~3 ms more for `collections`; this is its epoll selector, minus the parts
# the agent does not use.)

READABLE, WRITABLE = select.EPOLLIN, select.EPOLLOUT


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def __lt__(self, other: Timer) -> bool:
        return self.when < other.when

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """Callbacks on readable or writable descriptors, timers, and calls handed in from other threads."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        # fd -> (events, callback); a new watch is a new tuple, which `run` tells from the old one
        self.watched: dict[int, tuple[int, Callable[[], object]]] = {}
        self.timers: list[Timer] = []
        self.handed: list[Callable[[], object]] = []  # from other threads (list.append is atomic)
        self.on_wake: Callable[[], object] | None = None  # e.g. reap children after a SIGCHLD
        self.running = True
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.watch(self._wake_r, READABLE, self._woken)

    def watch(self, fd: int, events: int, callback: Callable[[], object]) -> None:
        """Call `callback` while `fd` is ready for `events`, or hangs up or fails (one registration per
        descriptor: READABLE or WRITABLE)."""
        old = self.watched.get(fd)
        if old is not None and old[0] == events and old[1] == callback:
            return
        if old is not None:
            try:
                self.epoll.modify(fd, events)
            except FileNotFoundError:  # closed without an unwatch, and its number reused: a new file
                self.epoll.register(fd, events)
        else:
            self.epoll.register(fd, events)
        self.watched[fd] = (events, callback)

    def unwatch(self, fd: int) -> None:
        if self.watched.pop(fd, None) is None:
            return
        try:  # noqa: SIM105 (as above: no contextlib)
            self.epoll.unregister(fd)
        except OSError:  # closed already: the kernel forgot it with its last descriptor
            pass

    def later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(time.monotonic() + seconds, callback)
        heapq.heappush(self.timers, timer)
        return timer

    def hand_in(self, callback: Callable[[], object]) -> None:
        """Run `callback` on the loop's thread, soon (safe to call from any thread or signal)."""
        self.handed.append(callback)
        try:  # noqa: SIM105 (contextlib is not imported: it costs the agent's start milliseconds)
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # already awake with bytes to spare
            pass

    def wakeup_fd(self) -> int:
        return self._wake_w

    def _woken(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        if self.on_wake is not None:
            self.on_wake()
        while self.handed:
            self._call(self.handed.pop(0))

    def run(self) -> None:
        while self.running:
            timeout = None
            while self.timers and self.timers[0].cancelled:
                heapq.heappop(self.timers)
            if self.timers:
                timeout = max(0.0, self.timers[0].when - time.monotonic())
            ready = [(fd, self.watched.get(fd)) for fd, _events in self.epoll.poll(-1 if timeout is None else timeout)]
            for fd, watch in ready:
                # Only the registration that was ready: an earlier callback of this round may have
                # unwatched this fd, closed it, and had its number reused by a new registration.
                # (Level-triggered: a registration skipped here is reported again next round.)
                if watch is not None and self.watched.get(fd) is watch:
                    self._call(watch[1])
            now = time.monotonic()
            while self.timers and self.timers[0].when <= now:
                timer = heapq.heappop(self.timers)
                if not timer.cancelled:
                    self._call(timer.callback)

    @staticmethod
    def _call(callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception as err:  # one request's bug must not end the sandbox's agent
            print(f"sandbox-agent: {type(err).__name__}: {err}", file=sys.stderr)


# -- the agent ------------------------------------------------------------------------------------------


class Outbox:
    """Frames to the manager on a non-blocking descriptor, written whole and in order. Past the
    high-water mark, `full` is true: command output stops being read and file reads wait."""

    def __init__(self, loop: Loop, fd: int | None) -> None:
        self.loop, self.fd = loop, fd
        self.buffer = bytearray()
        self.broken = fd is None
        self.waiting: list[Callable[[], object]] = []  # to call once the buffer is below the mark again
        if fd is not None:
            os.set_blocking(fd, False)

    @property
    def full(self) -> bool:
        return len(self.buffer) > HIGH_WATER

    def put(self, frame: bytes) -> None:
        if self.broken:
            return
        if not self.buffer:  # the usual case: straight out, no copy, no wakeup
            written = self._write(frame)
            if written == len(frame):
                return
            frame = frame[written:]
            assert self.fd is not None
            self.loop.watch(self.fd, WRITABLE, self._flush)
        self.buffer += frame

    def when_room(self, callback: Callable[[], object]) -> None:
        if self.full:
            self.waiting.append(callback)
        else:
            callback()

    def _write(self, data: bytes | bytearray) -> int:
        assert self.fd is not None
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:  # the manager is gone: nothing will read this any more
            self.broken = True
            self.buffer.clear()
            return len(data)

    def _flush(self) -> None:
        del self.buffer[: self._write(self.buffer)]
        if not self.buffer:
            assert self.fd is not None
            self.loop.unwatch(self.fd)
        if len(self.buffer) <= HIGH_WATER // 4:
            waiting, self.waiting = self.waiting, []
            for callback in waiting:
                callback()


class Exec:
    """One running command, from spawn to its exit frame.

    Phases: running, then either draining (it exited; its output is still coming) or killing
    (timeout or cancel: the kill in its thread), kill-drain (output left after the kill) and
    reaping (the kill is done, the exit status is not in yet); then done.
    """

    def __init__(self, agent: Agent, rid: int, request: dict[str, Any]) -> None:
        self.agent, self.id, self.request = agent, rid, request
        self.phase = "running"
        self.status: int | None = None  # the exit status once reaped (negative: a signal)
        self.pid = 0
        self.timed_out = False
        self.timer: Timer | None = None
        self.output: Output | None = None
        self.stdin = bytearray()
        self.stdin_fd = -1
        self.stdin_closing = False

    def start(self) -> None:
        req, agent = self.request, self.agent
        self.t0 = time.monotonic()
        argv = req.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise RequestError("InvalidRequest", "argv must be a non-empty list of strings")
        cwd = resolve(os.path.relpath(str(req.get("cwd") or WORKSPACE), WORKSPACE), allow_root=True)
        if not os.path.isdir(cwd):  # else the spawn's chdir fails, and would read as the command not found
            where = os.path.relpath(cwd, WORKSPACE)
            if os.path.lexists(cwd):
                raise RequestError("InvalidPath", f"working directory {where!r} is not a directory")
            raise RequestError("FileMissing", f"working directory {where!r} does not exist in the workspace")
        self.marker = f"{MARKER}={os.getpid()}.{self.id}.{time.time_ns()}"
        env = dict(agent.environment)
        env.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
        env[MARKER] = self.marker.split("=", 1)[1]
        env["PWD"] = cwd  # as a shell would set it, for commands the manager runs without one
        self.cap = int(req.get("cap", 1 << 20))
        timeout = float(req.get("timeout", 30.0))
        if isinstance(req.get("pty"), dict):
            self._start_on_terminal(argv, env, cwd, req["pty"], timeout)
            return
        made: list[int] = []
        try:  # our own pipes: their inodes tell who holds the output
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            made += (out_r, out_w)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            made += (err_r, err_w)
            in_r, in_w = os.pipe2(os.O_CLOEXEC) if req.get("stdin") else (agent.devnull, -1)
        except OSError:  # out of descriptors: none of them kept
            for fd in made:
                os.close(fd)
            raise
        try:
            pid = spawn(argv, env, cwd, (in_r, out_w, err_w))
        except OSError as err:  # not found, not executable, no pid left
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            agent.send({"type": "out", "id": self.id, "stream": 2}, f"{argv[0]}: {err.strerror}\n".encode())
            self.status = 127 if isinstance(err, FileNotFoundError) else 126
            self._finish()
            return
        finally:
            for fd in (out_w, err_w, in_r):
                if fd != agent.devnull:
                    os.close(fd)
        self.pid = pid
        self.pipes = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in (out_r, err_r)}
        self.output = Output(agent, self.id, self.cap, {out_r: 1, err_r: 2}, self._output_closed)
        if in_w >= 0:
            os.set_blocking(in_w, False)
            self.stdin_fd = in_w
        try:
            agent.reaper.watch(pid, self._exited)
        except OSError:  # no pidfd to be had (out of descriptors): the command must not run unwatched
            self._unwind(pid)
            raise
        self.timer = agent.loop.later(timeout, self.cancel)
        agent.send({"type": "started", "id": self.id, "pid": pid})

    def _start_on_terminal(self, argv: list[str], env: dict[str, str], cwd: str, size: dict[str, Any],
                           timeout: float) -> None:
        """The command on a new pseudo-terminal: its output and input are the terminal's master side."""
        agent = self.agent
        master, slave = os.openpty()
        try:
            self._set_size(master, size)
            env.setdefault("TERM", "xterm-256color")
            pid = spawn(argv, env, cwd, (0, 0, 0), tty=os.ttyname(slave))
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # the child opened its own: the terminal ends when the last holder closes it
        self.pid = pid
        self.pipes = set()  # the kill finds its holders by session and marker
        self.output = Output(agent, self.id, self.cap, {master: 1}, self._output_closed)  # EIO at the end
        try:
            self.stdin_fd = os.dup(master)
            os.set_blocking(self.stdin_fd, False)
            agent.reaper.watch(pid, self._exited)
        except BaseException:  # out of descriptors: the command must not run unwatched
            self._unwind(pid)
            raise
        self.timer = agent.loop.later(timeout, self.cancel)
        agent.send({"type": "started", "id": self.id, "pid": pid})

    def _unwind(self, pid: int) -> None:
        """A start that failed after the spawn: the command dies and its descriptors close."""
        os.killpg(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
        if self.output is not None:
            self.output.detach(drain=False)
        self._close_stdin()

    def resize(self, size: object) -> None:
        if self.stdin_fd >= 0 and isinstance(size, dict):
            self._set_size(self.stdin_fd, size)

    @staticmethod
    def _set_size(fd: int, size: dict[str, Any]) -> None:
        import fcntl
        import termios

        try:  # clamped, never refused: an error frame would end the terminal's exec
            rows = min(max(int(size.get("rows", 24)), 1), 9999)
            cols = min(max(int(size.get("cols", 80)), 1), 9999)
        except (TypeError, ValueError):
            rows, cols = 24, 80
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def signal(self, signum: object) -> None:
        """Deliver `signum` to the command's process group (a shell session's interrupt)."""
        if not isinstance(signum, int) or not 0 < signum < _signal.NSIG:
            raise RequestError("InvalidRequest", f"not a signal number: {signum!r}")
        if self.phase == "running" and self.pid:
            try:  # noqa: SIM105 (as above: no contextlib)
                os.killpg(self.pid, signum)  # its own session: the group's id is its pid
            except ProcessLookupError:  # exited meanwhile: its exit frame is on its way
                pass

    # stdin: the request's bytes into the command's, then end-of-file (half-close)

    def feed(self, data: bytes | None) -> None:
        if self.stdin_fd < 0:
            return
        if data is None:
            self.stdin_closing = True
        else:
            self.stdin += data
        self._feed()

    def _feed(self) -> None:
        try:
            while self.stdin:
                del self.stdin[: os.write(self.stdin_fd, self.stdin[:READ])]
        except BlockingIOError:
            self.agent.loop.watch(self.stdin_fd, WRITABLE, self._feed)
            return
        except OSError:  # the command exited without reading all of it: not an error
            self.stdin.clear()
            self.stdin_closing = True
        self.agent.loop.unwatch(self.stdin_fd)
        if self.stdin_closing:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd >= 0:
            self.agent.loop.unwatch(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    # the end: an exit, then the rest of its output; or a timeout or cancel, then the kill

    def _exited(self, status: int) -> None:
        self.status = status
        if self.phase == "reaping":
            self._finish()
        elif self.phase == "running":
            self._cancel_timer()
            # Output still in its pipes comes next; a background process that inherited them
            # (`server &`) may hold them open for ever: after a grace, as the engine's own exec does,
            # the command's end is reported and the rest is drained unsent.
            if self.output is not None and self.output.open:
                self.phase = "draining"
                self.timer = self.agent.loop.later(EXIT_DRAIN, self._drain_over)
            else:
                self._finish()

    def _drain_over(self) -> None:
        # The grace counts only while output can be sent: with the manager's stream full, what is
        # still in the pipes would be dropped unsent, so the grace starts again.
        if self.phase == "draining" and self.agent.readers.paused:
            self.timer = self.agent.loop.later(EXIT_DRAIN, self._drain_over)
        else:
            self._finish()

    def _output_closed(self) -> None:
        if self.phase == "draining":
            self._finish()
        elif self.phase == "kill-drain":
            self._after_kill_drain()

    def cancel(self) -> None:
        if self.phase != "running":
            return
        self.phase, self.timed_out = "killing", True
        self._cancel_timer()
        # In a thread made at start: a fork bomb's tree takes a while to walk, and under one no new
        # thread could be made.
        self.agent.killer.kill(self.pid, self.marker.encode(), self.pipes, self._killed)

    def _killed(self) -> None:
        if self.phase != "killing":
            return
        if self.output is not None and self.output.open:
            self.phase = "kill-drain"
            self.timer = self.agent.loop.later(DRAIN_AFTER_KILL, self._after_kill_drain)
        else:
            self._after_kill_drain()

    def _after_kill_drain(self) -> None:
        self._cancel_timer()
        if self.output is not None:
            self.output.detach(drain=False)
        if self.status is not None:
            self._finish()
        else:  # not reaped yet after the kill: a zombie in the making, given a second
            self.phase = "reaping"
            self.timer = self.agent.loop.later(1.0, self._finish)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self) -> None:
        if self.phase == "done":
            return
        self.phase = "done"
        self._cancel_timer()
        self._close_stdin()
        counts = {1: 0, 2: 0}
        if self.output is not None:
            self.output.detach(drain=self.status is not None and not self.timed_out)
            counts = self.output.counts
        status = self.status
        sig = -status if status is not None and status < 0 else None
        self.agent.send({
            "type": "exit", "id": self.id, "code": None if status is None else (128 + sig if sig else status),
            "signal": sig, "duration": time.monotonic() - self.t0, "timed_out": self.timed_out,
            "out_bytes": counts[1], "err_bytes": counts[2],
            "truncated": counts[1] > self.cap or counts[2] > self.cap,
        })
        self.agent.execs.pop(self.id, None)


def which(name: str, path: str) -> str | None:
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def spawn(argv: list[str], env: dict[str, str], cwd: str, stdio: tuple[int, int, int], tty: str = "") -> int:
    """Start the command in its own session with the given stdin, stdout and stderr; its pid.
    With `tty`, that terminal is all three, opened after setsid: its controlling terminal.

    posix_spawn (vfork underneath) costs the same whatever this process's size, where a fork
    copies its page tables. It has no chdir: the child inherits ours, set for the call (this
    process runs one thread that changes directories: this one).
    """
    program = argv[0] if "/" in argv[0] else which(argv[0], env.get("PATH", os.defpath))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
    actions: list[tuple[Any, ...]] = (
        [(os.POSIX_SPAWN_OPEN, 0, tty, os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
        if tty else [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
    )
    os.chdir(cwd)
    try:
        # Python ignores SIGPIPE and SIGXFSZ; a command gets the defaults, as from a shell.
        return os.posix_spawn(program, argv, env, file_actions=actions, setsid=True,
                              setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    finally:
        os.chdir("/")


class Reaper:
    """Exit statuses of the agent's children: by pidfd where the kernel has it, else on SIGCHLD."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.waiting: dict[int, Callable[[int], object]] = {}
        try:
            os.close(os.pidfd_open(os.getpid()))
            self.pidfd = True
        except (AttributeError, OSError):  # an old kernel, or a sandbox kernel without it (gVisor may lack it)
            self.pidfd = False
            _signal.set_wakeup_fd(loop.wakeup_fd())
            _signal.signal(_signal.SIGCHLD, lambda _signum, _frame: None)  # the wakeup fd does the work
            loop.on_wake = self._reap_all

    def watch(self, pid: int, exited: Callable[[int], object]) -> None:
        self.waiting[pid] = exited
        if self.pidfd:
            fd = os.pidfd_open(pid)

            def ready() -> None:
                if self._reap(pid):  # else not reapable yet: keep watching
                    self.loop.unwatch(fd)
                    os.close(fd)

            self.loop.watch(fd, READABLE, ready)
        else:
            self._reap_all()  # it may have exited before we listened

    def _reap(self, pid: int) -> bool:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 255 << 8
        if done == pid:
            self._report(pid, status)
        return done == pid

    def _reap_all(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._report(pid, status)

    def _report(self, pid: int, status: int) -> None:
        exited = self.waiting.pop(pid, None)
        if exited is not None:
            exited(os.waitstatus_to_exitcode(status))


class Killer:
    """The thread that kills command trees, made at start (under a fork bomb no thread could be made)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.jobs: _queue.SimpleQueue[tuple[int, bytes, set[str], Callable[[], object]]] = _queue.SimpleQueue()
        _thread.start_new_thread(self._run, ())  # never joined: the process ends with its main thread

    def kill(self, pid: int, marker: bytes, pipes: set[str], then: Callable[[], object]) -> None:
        self.jobs.put((pid, marker, pipes, then))

    def _run(self) -> None:
        while True:
            pid, marker, pipes, then = self.jobs.get()
            try:
                kill_tree(pid, marker, pipes)
            except Exception as err:  # reported, and the command still ends (as timed out)
                print(f"sandbox-agent: killing {pid}: {type(err).__name__}: {err}", file=sys.stderr)
            self.loop.hand_in(then)


class Output:
    """A command's stdout and stderr, read by loop callbacks as bytes arrive and sent as frames at
    once: no stream objects, nothing per pipe but a callback, on the hottest path there is."""

    def __init__(
        self, agent: Agent, rid: int, cap: int, fds: dict[int, int], on_closed: Callable[[], object]
    ) -> None:
        self.agent, self.id, self.cap, self.on_closed = agent, rid, cap, on_closed
        self.counts = {1: 0, 2: 0}
        self.open = dict(fds)  # fd -> stream number
        self.sending = True
        for fd, number in fds.items():
            os.set_blocking(fd, False)
            agent.readers.add(fd, self._reader(fd, number))

    def _reader(self, fd: int, number: int) -> Callable[[], None]:
        return lambda: self._readable(fd, number)

    def _readable(self, fd: int, number: int) -> None:
        try:
            data = os.read(fd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            if not self.open:
                self.on_closed()
            return
        if not self.sending:
            return  # after the command's end: drained so the holder never blocks, not sent
        room = self.cap - self.counts[number]
        self.counts[number] += len(data)
        if room > 0:
            self.agent.send({"type": "out", "id": self.id, "stream": number}, data[:room])

    def _close(self, fd: int) -> None:
        self.agent.readers.remove(fd)
        os.close(fd)
        del self.open[fd]

    def detach(self, *, drain: bool) -> None:
        """Stop sending: keep draining what still holds the pipes (`drain`), or close them now."""
        self.sending = False
        self.on_closed = lambda: None
        if not drain:
            for fd in list(self.open):
                self._close(fd)


class Readers:
    """The loop's callbacks for command output, paused while the manager's stream is full."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.callbacks: dict[int, Callable[[], object]] = {}
        self.paused = False

    def add(self, fd: int, callback: Callable[[], object]) -> None:
        self.callbacks[fd] = callback
        if not self.paused:
            self.loop.watch(fd, READABLE, callback)

    def remove(self, fd: int) -> None:
        if self.callbacks.pop(fd, None) is not None and not self.paused:
            self.loop.unwatch(fd)

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            for fd in self.callbacks:
                self.loop.unwatch(fd)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            for fd, callback in self.callbacks.items():
                self.loop.watch(fd, READABLE, callback)


class Agent:
    def __init__(self, loop: Loop, out_fd: int | None) -> None:
        self.loop = loop
        self.outbox = Outbox(loop, out_fd)
        self.reaper = Reaper(loop)
        self.killer = Killer(loop)
        self.readers = Readers(loop)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # the stdin of commands given none
        self.environment = dict(os.environ)  # the container's, once: reading os.environ decodes every entry
        self.execs: dict[int, Exec] = {}
        self.writes: dict[int, tuple[int, str]] = {}  # write id -> (open fd, path)
        self.lease_seconds = 0.0
        self.lease_until = 0.0
        self._lease_timer: Timer | None = None

    def lease(self, seconds: float) -> None:
        """Live only while the manager renews this (any frame from it renews); 0: live on regardless.

        A warm spare holds a lease: if its manager dies (SIGKILL, a crashed host), the spare's agent
        exits within `seconds` and the container stops, instead of idling until the hourly cleanup.
        A task holds none: it must outlive a manager restart, for the next one to take it over.
        """
        self.lease_seconds = seconds
        self.renew()
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._lease_timer = None
        if seconds > 0:
            self._check_lease()

    def renew(self) -> None:
        self.lease_until = time.monotonic() + self.lease_seconds

    def _check_lease(self) -> None:
        left = self.lease_until - time.monotonic()
        if left <= 0:
            os._exit(0)  # nobody holds the lease: end the sandbox (its container stops)
        self._lease_timer = self.loop.later(min(left, 1.0), self._check_lease)

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Queue a frame for the manager. Past the high-water mark, command output stops being read
        until the manager has taken what is queued."""
        self.outbox.put(encode(header, payload))
        if self.outbox.full and not self.readers.paused:
            self.readers.pause()
            self.outbox.when_room(self.readers.resume)

    def error(self, rid: object, kind: str, message: str) -> None:
        self.send({"type": "error", "id": rid, "kind": kind, "message": message[:2000]})

    def handle(self, header: dict[str, Any], payload: bytes) -> None:
        op, rid = header.get("op"), header.get("id")
        try:
            if op == "hello":
                self.send({"type": "hello", "id": rid, "version": VERSION, "pid": os.getpid()})
            elif op == "ping":
                self.send({"type": "pong", "id": rid})
            elif op == "lease":
                self.lease(float(header.get("seconds") or 0))
                self.send({"type": "leased", "id": rid})
            elif op == "exec":
                if not isinstance(rid, int) or rid in self.execs:
                    raise RequestError("InvalidRequest", "exec needs a fresh integer id")
                self.execs[rid] = command = Exec(self, rid, header)
                try:
                    command.start()
                except BaseException:
                    self.execs.pop(rid, None)
                    raise
            elif op == "stdin":
                if rid in self.execs:
                    self.execs[rid].feed(payload)
            elif op == "stdin_close":
                if rid in self.execs:
                    self.execs[rid].feed(None)
            elif op == "signal":
                if rid in self.execs:
                    self.execs[rid].signal(header.get("signal"))
            elif op == "resize":
                if rid in self.execs:
                    self.execs[rid].resize(header)
            elif op == "cancel":
                if rid in self.execs:
                    self.execs[rid].cancel()
            elif op == "write":
                self._write(rid, header, payload)
            elif op == "read":
                self._read(rid, header)
            elif op == "list":
                self._list(rid, header)
            else:
                raise RequestError("InvalidRequest", f"unknown op {op!r}")
        except RequestError as err:
            self.error(rid, err.kind, str(err))
        except OSError as err:
            self.error(rid, "OSError", f"{err.strerror or err}")
        except Exception as err:  # the agent keeps serving whatever one request does
            self.error(rid, "AgentError", f"{type(err).__name__}: {err}")

    def _write(self, rid: Any, header: dict[str, Any], payload: bytes) -> None:
        if rid not in self.writes:
            real = resolve(header.get("path"))
            parent = os.path.dirname(real)
            os.makedirs(parent, mode=0o755, exist_ok=True)
            resolve(os.path.relpath(parent, WORKSPACE), allow_root=True)  # a parent made through a link
            if os.path.isdir(real):
                raise RequestError("InvalidPath", f"{header.get('path')!r} is a directory")
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            self.writes[rid] = (fd, real)
        fd, _ = self.writes[rid]
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            os.close(self.writes.pop(rid)[0])
            raise
        if header.get("last"):
            os.close(self.writes.pop(rid)[0])
            self.send({"type": "done", "id": rid})

    def _read(self, rid: Any, header: dict[str, Any]) -> None:
        name = header.get("path")
        real = resolve(name, must_exist=True)
        limit = int(header.get("limit", 64 << 20))
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as err:
            raise RequestError("FileMissing", f"{name!r} does not exist in the workspace") from err
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise RequestError("InvalidPath", f"{name!r} is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise RequestError("InvalidPath", f"{name!r} is not a regular file")
            if info.st_size > limit:
                raise RequestError("InvalidPath", f"{name!r} is {info.st_size} bytes, over the {limit}-byte limit")
        except BaseException:
            os.close(fd)
            raise
        sent = 0

        def more() -> None:  # a chunk at a time, waiting while the manager's stream is full
            nonlocal sent
            try:
                while not self.outbox.full:
                    chunk = os.read(fd, MAX_PAYLOAD)
                    if not chunk:
                        os.close(fd)
                        self.send({"type": "done", "id": rid, "size": sent})
                        return
                    sent += len(chunk)
                    if sent > limit:
                        raise RequestError("InvalidPath", f"{name!r} is over the {limit}-byte limit")
                    self.send({"type": "data", "id": rid}, chunk)
            except RequestError as err:
                os.close(fd)
                self.error(rid, err.kind, str(err))
                return
            except OSError as err:
                os.close(fd)
                self.error(rid, "OSError", f"{err.strerror or err}")
                return
            self.outbox.when_room(more)

        more()

    def _list(self, rid: Any, header: dict[str, Any]) -> None:
        real = resolve(header.get("path", "."), allow_root=True, must_exist=True)
        if not os.path.isdir(real):
            raise RequestError("InvalidPath", f"{header.get('path')!r} is not a directory")
        limit = min(int(header.get("limit", MAX_LIST)), MAX_LIST)
        entries = []
        with os.scandir(real) as listing:
            for entry in listing:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                kind = ("link" if stat.S_ISLNK(info.st_mode) else "dir" if stat.S_ISDIR(info.st_mode)
                        else "file" if stat.S_ISREG(info.st_mode) else "other")
                entries.append([entry.name, kind, info.st_size, info.st_mtime])
        entries.sort()
        payload = dumps(entries[:limit]).encode()
        while len(payload) > MAX_PAYLOAD and limit > 1:  # very long names: fewer entries, still one frame
            limit //= 2
            payload = dumps(entries[:limit]).encode()
        self.send({"type": "entries", "id": rid, "truncated": len(entries) > limit}, payload)


class Inbox:
    """Requests from the manager on stdin, handled as whole frames arrive; end of stdin ends the agent."""

    def __init__(self, loop: Loop, agent: Agent, fd: int) -> None:
        self.loop, self.agent, self.fd = loop, agent, fd
        self.frames = FrameBuffer()
        self.broken = False
        os.set_blocking(fd, False)
        loop.watch(fd, READABLE, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.running = False  # stdin closed: nobody will ever ask anything again
            return
        if self.broken:
            return
        self.agent.renew()  # whatever the manager sends keeps a lease
        try:
            for header, payload in self.frames.feed(data):
                self.agent.handle(header, payload)
        except ProtocolError as err:
            # Garbage on stdin (code inside can write to it): frames cannot be found again. Say so and
            # stop listening, but stay alive until stdin closes: the container lives on and the manager
            # falls back to the engine's own exec.
            self.agent.error(None, "ProtocolError", str(err))
            self.broken = True


def health_socket() -> str:
    """The health socket's name for this container. Abstract sockets belong to the network namespace, which
    several containers share (the runtime's kept namespaces), so the name carries the pid namespace too:
    each container has its own, and the HEALTHCHECK's process runs in it, as the agent does."""
    try:
        return f"{HEALTH_SOCKET}-{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # no /proc/self/ns here: one agent per network namespace answers, as before
        return HEALTH_SOCKET


class HealthServer:
    """Answers `pong` on the container's abstract socket, for the image's HEALTHCHECK (`sandbox-agent.py health`)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        kind = _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
        self.server = _socket.socket(_socket.AF_UNIX, kind)
        try:
            self.server.bind(health_socket())
        except OSError:  # the name is taken (by another agent, if the fallback name): health says no answer
            self.server.close()
            return
        self.server.listen(8)
        loop.watch(self.server.fileno(), READABLE, self._accept)

    def _accept(self) -> None:
        try:
            fd, _ = self.server._accept()  # type: ignore[attr-defined]  # a descriptor, not a socket object
        except OSError:
            return
        conn = _socket.socket(fileno=fd)
        conn.setblocking(False)
        fd = conn.fileno()

        def close() -> None:
            self.loop.unwatch(fd)
            timer.cancel()
            conn.close()

        def answer() -> None:
            try:
                conn.recv(64)
                conn.send(b"pong\n")
            except OSError:
                pass
            close()

        timer = self.loop.later(2.0, close)  # a client that never asks is not waited for
        self.loop.watch(fd, READABLE, answer)


def serve_stdio(lease: float = 0.0) -> None:
    loop = Loop()
    agent = Agent(loop, 1)
    if lease > 0:  # held from the start: a container whose manager dies before its first frame ends too
        agent.lease(lease)
    Inbox(loop, agent, 0)
    HealthServer(loop)
    loop.run()


def health() -> int:
    import socket  # a process of its own, once per check: the full module is no cost to sandboxes

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(3.0)
            conn.connect(health_socket())
            conn.sendall(b"ping\n")
            answer = conn.recv(16)
    except OSError as err:
        print(f"sandbox-agent: no answer: {err}", file=sys.stderr)
        return 1
    return 0 if answer.startswith(b"pong") else 1


def main(argv: list[str]) -> int:
    if argv[1:2] == ["health"]:
        return health()
    if argv[1:2] == ["--version"]:  # the image build checks the agent runs on the image's Python
        print(f"sandbox-agent {VERSION} on Python {sys.version.split()[0]}")
        return 0
    if argv[1:2] == ["--lease"] and len(argv) > 2:  # sandbox-agent --lease SECONDS
        serve_stdio(float(argv[2]))
        return 0
    serve_stdio()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
