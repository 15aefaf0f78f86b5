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
    exec {argv, env, cwd, timeout, cap, stdin}
                                   -> out {stream: 1|2} + bytes ..., then exit {code, signal,
                                      duration, timed_out, out_bytes, err_bytes, truncated}
    stdin + bytes / stdin_close    (no answer)
    cancel                         -> the exec ends with timed_out
    write {path, last} + bytes     -> done (after the last chunk)
    read {path, limit}             -> data + bytes ..., then done {size}
    list {path, limit}             -> entries + JSON [[name, type, size, mtime], ...]
    lease {seconds}                -> leased  (exit unless the manager sends something within `seconds`;
                                      0 ends the lease)
    any failure                    -> error {kind, message}  (kind: InvalidPath, FileMissing, ...)

A command runs in its own session with the environment marker THEAPPAPP_EXEC. On timeout or
cancel, everything it started dies: its session and process group, every process that still
holds its output pipes or carries its marker, and all their descendants (double-forked and
setsid daemons included), in rounds until none is left. Output past `cap` bytes per stream is
counted, not sent. Paths are relative to /workspace; none may climb out with '..' and no
symlink may lead a path out of it.

    python3 -I sandbox-agent.py          serve on stdin/stdout (the container's main process)
    python3 -I sandbox-agent.py health   ask the running agent for a pong (the image's HEALTHCHECK)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import stat
import struct
import sys
import time
from typing import Any

VERSION = 1
PREFIX = struct.Struct(">IH")
MAX_HEADER = 60 * 1024  # the prefix holds up to 65535
MAX_PAYLOAD = 1 << 20
WORKSPACE = os.environ.get("THEAPPAPP_WORKSPACE", "/workspace")
HEALTH_SOCKET = "\0theappapp-sandbox-agent"  # abstract: no file, one per network namespace
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


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
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
                header = json.loads(body[:head_len])
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
    with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as handle:
        if marker in handle.read().split(b"\0"):
            return True
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in pipes:
                    return True
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
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


# -- the agent ------------------------------------------------------------------------------------------


class Exec:
    """One running command."""

    def __init__(self, agent: Agent, rid: int, request: dict[str, Any]) -> None:
        self.agent, self.id, self.request = agent, rid, request
        self.stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        req = self.request
        t0 = time.monotonic()
        argv = req.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise RequestError("InvalidRequest", "argv must be a non-empty list of strings")
        cwd = resolve(os.path.relpath(str(req.get("cwd") or WORKSPACE), WORKSPACE), allow_root=True)
        marker = f"{MARKER}={os.getpid()}.{self.id}.{time.time_ns()}"
        env = dict(self.agent.environment)
        env.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
        env[MARKER] = marker.split("=", 1)[1]
        env["PWD"] = cwd  # as a shell would set it, for commands the manager runs without one
        cap = int(req.get("cap", 1 << 20))
        timeout = float(req.get("timeout", 30.0))
        out_r, out_w = os.pipe()  # our own pipes: their inodes tell who still holds the command's output
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if req.get("stdin") else (self.agent.devnull, -1)
        try:
            pid = spawn(argv, env, cwd, (in_r, out_w, err_w))
        except OSError as err:  # not found, not executable, no pid left
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            code = 127 if isinstance(err, FileNotFoundError) else 126
            await self.agent.send({"type": "out", "id": self.id, "stream": 2}, f"{argv[0]}: {err.strerror}\n".encode())
            await self.agent.send({"type": "exit", "id": self.id, "code": code, "signal": None,
                                   "duration": time.monotonic() - t0, "timed_out": False,
                                   "out_bytes": 0, "err_bytes": 0, "truncated": False})
            return
        finally:
            for fd in (out_w, err_w, in_r):
                if fd != self.agent.devnull:
                    os.close(fd)
        exited = self.agent.reaper.watch(pid)
        pipes = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in (out_r, err_r)}
        output = Output(self.agent, self.id, cap, {out_r: 1, err_r: 2})
        feeder = asyncio.ensure_future(self._feed(in_w)) if in_w >= 0 else None
        timed_out = False
        try:
            waits: set[asyncio.Future[Any]] = {exited, self.cancelled}
            finished, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if exited in finished:
                # The command exited. Output still in its pipes comes next; a background process that
                # inherited them (`server &`) may hold them open for ever: after a grace, as the
                # engine's own exec does, the command's end is reported and the rest is drained unsent.
                await output.closed_within(EXIT_DRAIN)
            else:
                timed_out = True
                # In a thread made at start: a fork bomb's tree takes a while to walk, and under one
                # no new thread could be made.
                await asyncio.get_running_loop().run_in_executor(self.agent.killer, kill_tree, pid,
                                                                 marker.encode(), pipes)
                await output.closed_within(DRAIN_AFTER_KILL)
        finally:
            if feeder is not None:
                feeder.cancel()
            output.detach(drain=exited.done() and not timed_out)
        returncode: int | None = exited.result() if exited.done() else None
        if returncode is None:  # still not reaped after the kill: a zombie in the making
            with contextlib.suppress(asyncio.TimeoutError):
                returncode = await asyncio.wait_for(asyncio.shield(exited), 1.0)
        sig = -returncode if returncode is not None and returncode < 0 else None
        exit_code = None if returncode is None else (128 + sig if sig else returncode)
        await self.agent.send({
            "type": "exit", "id": self.id, "code": exit_code, "signal": sig, "duration": time.monotonic() - t0,
            "timed_out": timed_out, "out_bytes": output.counts[1], "err_bytes": output.counts[2],
            "truncated": output.counts[1] > cap or output.counts[2] > cap,
        })

    async def _feed(self, fd: int) -> None:
        """The request's stdin into the command's, then end-of-file (half-close)."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop), os.fdopen(fd, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        try:
            while True:
                data = await self.stdin.get()
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return  # the command exited without reading all of it: not an error
        finally:
            transport.close()


def spawn(argv: list[str], env: dict[str, str], cwd: str, stdio: tuple[int, int, int]) -> int:
    """Start the command in its own session with the given stdin, stdout and stderr; its pid.

    posix_spawn (vfork underneath) costs the same whatever this process's size, where a fork
    copies its page tables. It has no chdir: the child inherits ours, set for the call (this
    process runs one thread that changes directories: this one).
    """
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH", os.defpath))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
    os.chdir(cwd)
    try:
        return os.posix_spawn(program, argv, env, file_actions=actions, setsid=True)
    finally:
        os.chdir("/")


class Reaper:
    """Exit statuses of the agent's children, as futures: by pidfd where the kernel has it, else SIGCHLD."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[int, asyncio.Future[int]] = {}
        try:
            os.close(os.pidfd_open(os.getpid()))
            self.pidfd = True
        except (AttributeError, OSError):  # an old kernel, or a sandbox kernel without it (gVisor may lack it)
            self.pidfd = False
            loop.add_signal_handler(signal.SIGCHLD, self._reap_all)

    def watch(self, pid: int) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self.loop.create_future()
        self.waiting[pid] = future
        if self.pidfd:
            fd = os.pidfd_open(pid)

            def exited() -> None:
                self.loop.remove_reader(fd)
                os.close(fd)
                self._reap(pid)

            self.loop.add_reader(fd, exited)
        else:
            self._reap_all()  # it may have exited before we listened
        return future

    def _reap(self, pid: int) -> None:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 255 << 8
        if done == pid:
            future = self.waiting.pop(pid, None)
            if future is not None and not future.done():
                future.set_result(os.waitstatus_to_exitcode(status))

    def _reap_all(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            future = self.waiting.pop(pid, None)
            if future is not None and not future.done():
                future.set_result(os.waitstatus_to_exitcode(status))


class Output:
    """A command's stdout and stderr, read by the event loop's reader callbacks as bytes arrive and
    sent as frames at once: no stream objects, no task per pipe, on the hottest path there is."""

    def __init__(self, agent: Agent, rid: int, cap: int, fds: dict[int, int]) -> None:
        self.agent, self.id, self.cap = agent, rid, cap
        self.counts = {1: 0, 2: 0}
        self.open = dict(fds)  # fd -> stream number
        self.sending = True
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for fd, number in fds.items():
            os.set_blocking(fd, False)
            agent.readers.add(fd, self._readable, fd, number)

    def _readable(self, fd: int, number: int) -> None:
        try:
            data = os.read(fd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        if not self.sending:
            return  # after the command's end: drained so the holder never blocks, not sent
        room = self.cap - self.counts[number]
        self.counts[number] += len(data)
        if room > 0:
            self.agent.send_now({"type": "out", "id": self.id, "stream": number}, data[:room])

    def _close(self, fd: int) -> None:
        self.agent.readers.remove(fd)
        os.close(fd)
        del self.open[fd]
        if not self.open and not self.closed.done():
            self.closed.set_result(None)

    async def closed_within(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.shield(self.closed)

    def detach(self, *, drain: bool) -> None:
        """Stop sending: keep draining what still holds the pipes (`drain`), or close them now."""
        self.sending = False
        if not drain:
            for fd in list(self.open):
                self._close(fd)


class Readers:
    """The event loop's reader callbacks for command output, paused while the manager's stream is full."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.callbacks: dict[int, tuple[Any, ...]] = {}
        self.paused = False

    def add(self, fd: int, *callback: Any) -> None:
        self.callbacks[fd] = callback
        if not self.paused:
            self.loop.add_reader(fd, *callback)

    def remove(self, fd: int) -> None:
        if self.callbacks.pop(fd, None) is not None:
            self.loop.remove_reader(fd)

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            for fd in self.callbacks:
                self.loop.remove_reader(fd)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            for fd, callback in self.callbacks.items():
                self.loop.add_reader(fd, *callback)


class Agent:
    def __init__(self, writer: asyncio.StreamWriter | None) -> None:
        self.writer = writer
        self.reaper = Reaper(asyncio.get_running_loop())
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # the stdin of commands given none
        self.environment = dict(os.environ)  # the container's, once: reading os.environ decodes every entry
        self.killer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="killer")
        self.killer.submit(int).result()  # its thread exists from now on
        self.execs: dict[int, Exec] = {}
        self.writes: dict[int, tuple[int, str]] = {}  # write id -> (open fd, path)
        self.tasks: set[asyncio.Future[None]] = set()  # running execs (referenced, so never collected)
        self.readers = Readers(asyncio.get_running_loop())
        self._draining: asyncio.Future[None] | None = None
        self.lease_seconds = 0.0
        self.lease_until = 0.0
        self._lease_timer: asyncio.Future[None] | None = None

    def lease(self, seconds: float) -> None:
        """Live only while the manager renews this (any frame from it renews); 0: live on regardless.

        A warm spare holds a lease: if its manager dies (SIGKILL, a crashed host), the spare's agent
        exits within `seconds` and the container stops, instead of idling until the hourly cleanup.
        A task holds none: it must outlive a manager restart, for the next one to take it over.
        """
        self.lease_seconds = seconds
        self.renew()
        if seconds > 0 and self._lease_timer is None:
            self._lease_timer = asyncio.ensure_future(self._watch_lease())

    def renew(self) -> None:
        self.lease_until = time.monotonic() + self.lease_seconds

    async def _watch_lease(self) -> None:
        while self.lease_seconds > 0:
            left = self.lease_until - time.monotonic()
            if left <= 0:
                os._exit(0)  # nobody holds the lease: end the sandbox (its container stops)
            await asyncio.sleep(min(left, 1.0))
        self._lease_timer = None

    def send_now(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Queue a frame on the stream (writes are whole frames: they never interleave). Past the
        high-water mark, command output stops being read until the manager has taken what is queued."""
        if self.writer is None:
            return
        self.writer.write(encode(header, payload))
        if self.writer.transport.get_write_buffer_size() > HIGH_WATER and not self.readers.paused:
            self.readers.pause()
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        assert self.writer is not None
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        self.readers.resume()

    async def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        self.send_now(header, payload)
        if self.writer is not None:
            await self.writer.drain()

    async def error(self, rid: object, kind: str, message: str) -> None:
        await self.send({"type": "error", "id": rid, "kind": kind, "message": message[:2000]})

    async def handle(self, header: dict[str, Any], payload: bytes) -> None:
        op, rid = header.get("op"), header.get("id")
        try:
            if op == "hello":
                await self.send({"type": "hello", "id": rid, "version": VERSION, "pid": os.getpid()})
            elif op == "ping":
                await self.send({"type": "pong", "id": rid})
            elif op == "lease":
                self.lease(float(header.get("seconds") or 0))
                await self.send({"type": "leased", "id": rid})
            elif op == "exec":
                if not isinstance(rid, int) or rid in self.execs:
                    raise RequestError("InvalidRequest", "exec needs a fresh integer id")
                self.execs[rid] = Exec(self, rid, header)
                self.tasks.add(task := asyncio.ensure_future(self._run_exec(rid)))
                task.add_done_callback(self.tasks.discard)
            elif op == "stdin":
                if rid in self.execs:
                    self.execs[rid].stdin.put_nowait(payload)
            elif op == "stdin_close":
                if rid in self.execs:
                    self.execs[rid].stdin.put_nowait(None)
            elif op == "cancel":
                if rid in self.execs and not self.execs[rid].cancelled.done():
                    self.execs[rid].cancelled.set_result(None)
            elif op == "write":
                await self._write(rid, header, payload)
            elif op == "read":
                await self._read(rid, header)
            elif op == "list":
                await self._list(rid, header)
            else:
                raise RequestError("InvalidRequest", f"unknown op {op!r}")
        except RequestError as err:
            await self.error(rid, err.kind, str(err))
        except OSError as err:
            await self.error(rid, "OSError", f"{err.strerror or err}")

    async def _run_exec(self, rid: int) -> None:
        try:
            await self.execs[rid].run()
        except RequestError as err:
            await self.error(rid, err.kind, str(err))
        except Exception as err:  # the agent keeps serving whatever one command does
            await self.error(rid, "AgentError", f"{type(err).__name__}: {err}")
        finally:
            self.execs.pop(rid, None)

    async def _write(self, rid: Any, header: dict[str, Any], payload: bytes) -> None:
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
            await self.send({"type": "done", "id": rid})

    async def _read(self, rid: Any, header: dict[str, Any]) -> None:
        real = resolve(header.get("path"), must_exist=True)
        limit = int(header.get("limit", 64 << 20))
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as err:
            raise RequestError("FileMissing", f"{header.get('path')!r} does not exist in the workspace") from err
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise RequestError("InvalidPath", f"{header.get('path')!r} is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise RequestError("InvalidPath", f"{header.get('path')!r} is not a regular file")
            if info.st_size > limit:
                raise RequestError("InvalidPath", f"{header.get('path')!r} is {info.st_size} bytes, over the "
                                   f"{limit}-byte limit")
            size = 0
            while chunk := os.read(fd, MAX_PAYLOAD):
                size += len(chunk)
                if size > limit:
                    raise RequestError("InvalidPath", f"{header.get('path')!r} is over the {limit}-byte limit")
                await self.send({"type": "data", "id": rid}, chunk)
        finally:
            os.close(fd)
        await self.send({"type": "done", "id": rid, "size": size})

    async def _list(self, rid: Any, header: dict[str, Any]) -> None:
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
        payload = json.dumps(entries[:limit], separators=(",", ":")).encode()
        while len(payload) > MAX_PAYLOAD and limit > 1:  # very long names: fewer entries, still one frame
            limit //= 2
            payload = json.dumps(entries[:limit], separators=(",", ":")).encode()
        await self.send({"type": "entries", "id": rid, "truncated": len(entries) > limit}, payload)


async def serve_stdio() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_PAYLOAD * 2)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop), os.fdopen(1, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    agent = Agent(writer)
    health = await _health_server()
    frames = FrameBuffer()
    try:
        while True:
            data = await reader.read(READ)
            if not data:
                return  # stdin closed: nobody will ever ask anything again
            agent.renew()  # whatever the manager sends keeps a lease
            try:
                for header, payload in frames.feed(data):
                    await agent.handle(header, payload)
            except ProtocolError as err:
                # Garbage on stdin (code inside can write to it): frames cannot be found again. Say so
                # and stop listening, but stay alive until stdin closes: the container lives on and
                # the manager falls back to the engine's own exec.
                await agent.error(None, "ProtocolError", str(err))
                while await reader.read(READ):
                    pass
                return
    finally:
        if health is not None:
            health.close()


async def _health_server() -> asyncio.AbstractServer | None:
    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(64), 2.0)
            writer.write(b"pong\n")
            await writer.drain()
        writer.close()

    try:
        return await asyncio.start_unix_server(pong, HEALTH_SOCKET)
    except OSError:  # another agent in this network namespace already answers: health still works
        return None


def health() -> int:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(3.0)
            conn.connect(HEALTH_SOCKET)
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
    asyncio.run(serve_stdio())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
