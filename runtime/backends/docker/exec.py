"""Running one command in a Docker sandbox: timeout that kills the whole tree, capped output, OOM detection.

The command's own process tree is not enough to kill on timeout: `setsid`/`nohup`
children and double-forked daemons are reparented to the container's init. A task
owns its container, so on timeout every process in it dies except init (PID 1) and
the keeper (its first child, the lowest other pid) — concurrent execs of the same task
included. The killer runs inside the container with bash builtins only (no fork
needed); if it cannot start (a fork bomb holds every pid), the manager freezes the
container's cgroup from the host and kills from there (runc or crun on this host only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from runtime.backends.docker.cgroups import OOM_PROBE, ContainerCgroup, parse_oom_kills
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.hijack import STDERR, ExecConnection, api_call, start_exec
from runtime.errors import EngineError, EngineUnavailable, SandboxError, SandboxGone
from runtime.sandbox.execution import ExecRequest, ExecResult, OutputChunk

log = logging.getLogger(__name__)
# After a timeout: the killers get KILL_GRACE + HOST_KILL_GRACE, closing the stream and reading the exit code
# CLOSE_GRACE each — together under the 2 s the caller is promised.
KILL_GRACE = 1.0
CLOSE_GRACE = 0.3
HOST_KILL_GRACE = 0.4  # the fallback killer, when the in-container one could not run
# After this long without output, and as often again, an exec checks that its container still
# runs: under gVisor an OOM can kill the whole sandbox and the exec's stream never ends.
LIVENESS_EVERY = 1.0

# Kills every process but PID 1, the keeper and itself, in rounds until none is left
# alive (a fork bomb's children appear between rounds). Builtins only: no fork.
HELPER_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KILLER_SCRIPT = r"""
me=$$; keeper=
for d in /proc/[0-9]*; do p=${d#/proc/}
  if [ "$p" != 1 ] && [ "$p" != "$me" ] && { [ -z "$keeper" ] || [ "$p" -lt "$keeper" ]; }; then keeper=$p; fi
done
for ((round = 0; round < 200; round++)); do
  n=0
  for d in /proc/[0-9]*; do p=${d#/proc/}
    case $p in 1|"$me"|"$keeper") continue;; esac
    read -r stat < "$d/stat" 2>/dev/null || continue
    stat=${stat##*) }
    [ "${stat:0:1}" = Z ] && continue
    kill -KILL "$p" 2>/dev/null && n=$((n + 1))
  done
  [ "$n" = 0 ] && break
done
[ "$n" = 0 ] && echo theappapp-killed
"""


class Capture:
    """Keeps the first `cap` bytes of a stream, counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.kept)

    def text(self) -> str:
        return self.kept.decode("utf-8", "replace")


@dataclass
class ExecTarget:
    """What an exec needs to know about its container; the manager's sandbox provides it."""

    container_id: str
    cgroup: ContainerCgroup | None
    host_kill: bool  # the engine runs runc or crun on this host: the cgroup fallback killer may be used
    oom_seen: int = 0  # last in-container OOM count, when the host cgroup is not readable


class Executor:
    """Runs execs against one engine; helper commands (killer, probes) run as `user`."""

    def __init__(self, engine: Engine, user: str) -> None:
        self.engine = engine
        self.user = user

    async def chunks(
        self, target: ExecTarget, request: ExecRequest, finish: Callable[[ExecResult], None]
    ) -> AsyncGenerator[OutputChunk, None]:
        t0 = time.monotonic()
        deadline = t0 + request.timeout
        oom_before = target.cgroup.oom_kills() if target.cgroup else None
        out, err = Capture(request.max_output_bytes), Capture(request.max_output_bytes)

        def result(exit_code: int | None, timed_out: bool, oom: bool) -> ExecResult:
            return ExecResult(
                exit_code=exit_code,
                stdout=out.text(),
                stderr=err.text(),
                duration=time.monotonic() - t0,
                timed_out=timed_out,
                oom_killed=oom,
                truncated=out.truncated or err.truncated,
                stdout_bytes=out.total,
                stderr_bytes=err.total,
            )

        try:
            # Even starting is bounded: an engine (gVisor) can hang an exec before it runs.
            conn = await asyncio.wait_for(self._start(target, request), request.timeout)
        except TimeoutError:
            await self.kill_all(target)
            finish(result(None, True, False))
            return
        stdin_task = asyncio.create_task(conn.send_stdin(request.stdin)) if request.stdin is not None else None
        timed_out, finished, died = False, False, False
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                try:
                    item = await asyncio.wait_for(conn.next_chunk(), min(remaining, LIVENESS_EVERY))
                except TimeoutError:
                    if await self.container_gone(target, deadline):
                        died = True
                        break
                    continue  # still running: wait on, until the deadline
                if item is None:
                    break
                stream, data = item
                (err if stream == STDERR else out).add(data)
                yield OutputChunk("stderr" if stream == STDERR else "stdout", data)
            finished = True
        finally:
            if not finished or timed_out:
                # Timed out, or the caller stopped listening/cancelled: nothing may outlive the call.
                await self.kill_all(target)
            if stdin_task is not None:
                stdin_task.cancel()
            await conn.close(CLOSE_GRACE if timed_out else 1.0)
            if not finished:
                finish(result(None, False, False))  # abandoned or failed: still on the record
        if died:  # the exec went down with its container: the container's end is the exec's
            exit_code, oom = await self.container_end(target.container_id)
            finish(result(exit_code, False, oom))
            return
        # After a timeout every step below is bounded, so the call returns within timeout + 2 s.
        exit_code = await self._exit_code(conn.exec_id, wait=not timed_out)
        oom = await self.oom(target, oom_before, exit_code, probe_inside=not timed_out)
        finish(result(exit_code, timed_out, oom))

    async def container_gone(self, target: ExecTarget, deadline: float) -> bool:
        """Whether the exec's container stopped running: its cgroup is gone, or (no cgroup to read,
        and not runc or crun on this host, which end the stream themselves) the engine says so.

        An engine that does not answer before the exec's own deadline proves nothing: still running.
        """
        if target.cgroup is not None:
            return not target.cgroup.exists()
        if target.host_kill:
            return False
        wait = min(self.engine.api_timeout, max(0.05, deadline - time.monotonic()))
        try:
            status, info = await self._api("GET", f"/containers/{target.container_id}/json", deadline=wait)
        except EngineUnavailable:
            return False
        return status == 404 or (isinstance(info, dict) and not info.get("State", {}).get("Running", True))

    async def still_running(self, container_id: str, within: float = 1.0) -> bool:
        """Whether the container runs on, asked for up to `within` seconds (a dying one stops in that time)."""
        end = time.monotonic() + within
        while True:
            with contextlib.suppress(EngineUnavailable):
                status, info = await self._api("GET", f"/containers/{container_id}/json")
                if status == 404 or (isinstance(info, dict) and not info.get("State", {}).get("Running", True)):
                    return False
            if time.monotonic() >= end:
                return True
            await asyncio.sleep(0.05)

    async def container_end(self, container_id: str) -> tuple[int | None, bool]:
        """The dead container's exit code, and whether the OOM killer ended it."""
        with contextlib.suppress(EngineUnavailable):
            status, info = await self._api("GET", f"/containers/{container_id}/json")
            if status == 200 and isinstance(info, dict):
                state = info.get("State", {})
                code = state.get("ExitCode")
                return (int(code) if code is not None else None), bool(state.get("OOMKilled"))
        return None, False

    async def _start(self, target: ExecTarget, request: ExecRequest) -> ExecConnection:
        exec_id = await self.create(target.container_id, list(request.argv), request, stdin=request.stdin is not None)
        return await start_exec(self.engine.endpoint(), self.engine.api_version, exec_id)

    async def _api(self, method: str, path: str, payload: Any = None, deadline: float | None = None) -> tuple[int, Any]:
        try:
            return await asyncio.wait_for(
                api_call(self.engine.endpoint(), method, f"/v{self.engine.api_version}{path}", payload),
                deadline or self.engine.api_timeout,
            )
        except TimeoutError as err:
            raise EngineUnavailable(f"Docker engine did not answer {method} {path} in time") from err

    async def create(
        self, container_id: str, argv: list[str], request: ExecRequest | None = None, *, stdin: bool = False
    ) -> str:
        payload: dict[str, Any] = {
            "AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Cmd": argv, "User": self.user,
        }
        if request is not None:
            payload.update(
                Env=[f"{k}={v}" for k, v in request.env.items()] or None, WorkingDir=request.workdir, User=request.user
            )
        else:  # our own helper: the image's PATH leads through the project's volume (installed packages)
            payload["Env"] = [HELPER_PATH]
        status, body = await self._api("POST", f"/containers/{container_id}/exec", payload)
        if status in (404, 409):  # removed, or no longer running
            raise await self.gone(container_id, str(body))
        if status != 201 or not isinstance(body, dict) or "Id" not in body:
            raise EngineError(f"the Docker engine refused an exec (HTTP {status}): {body}")
        return str(body["Id"])

    async def gone(self, container_id: str, detail: str) -> SandboxGone:
        """The error for a sandbox whose container stopped: with its exit status when the engine has it."""
        exit_code, oom = await self.container_end(container_id)
        how = "was removed" if exit_code is None else f"exited with status {exit_code}" + (
            " (out of memory)" if oom else "")
        return SandboxGone(f"the sandbox is gone: its container {container_id[:12]} {how} ({detail})",
                           exit_code, oom)

    async def _exit_code(self, exec_id: str, *, wait: bool) -> int | None:
        # The stream can close a moment before the engine records the exit code.
        for attempt in range(40 if wait else 1):
            try:
                status, info = await self._api("GET", f"/exec/{exec_id}/json", deadline=None if wait else CLOSE_GRACE)
            except EngineUnavailable:
                if wait:
                    raise
                return None
            if status != 200 or not isinstance(info, dict):
                return None  # the container went away under the exec (destroyed meanwhile)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if attempt:
                await asyncio.sleep(0.005)
        return None

    async def oom(
        self, target: ExecTarget, before: int | None, exit_code: int | None, *, probe_inside: bool
    ) -> bool:
        if target.cgroup is not None and before is not None:
            after = target.cgroup.oom_kills()
            return after is not None and after > before
        if not probe_inside or exit_code not in (137, None):
            return False  # not SIGKILLed: the OOM killer did not end the shell
        # The counter is only readable from inside: one more (cheap) exec.
        with contextlib.suppress(SandboxError, docker.errors.APIError):
            output = await self.run_internal(target, ["/bin/sh", "-c", OOM_PROBE], KILL_GRACE * 2)
            count = parse_oom_kills(output)
            if count is not None and count > target.oom_seen:
                target.oom_seen = count
                return True
        return False

    async def run_internal(self, target: ExecTarget, argv: list[str], deadline: float) -> bytes:
        """Run a helper command (not the user's) and return its stdout, within `deadline` seconds."""

        async def go() -> bytes:
            exec_id = await self.create(target.container_id, argv)
            conn = await start_exec(self.engine.endpoint(), self.engine.api_version, exec_id)
            data = bytearray()
            try:
                while (item := await conn.next_chunk()) is not None:
                    if item[0] != STDERR and len(data) < 1 << 20:
                        data += item[1]
            finally:
                await conn.close()
            return bytes(data)

        return await asyncio.wait_for(go(), deadline)

    async def kill_all(self, target: ExecTarget) -> None:
        """Kill every process in the container except init and the keeper."""
        try:
            output = await self.run_internal(target, ["/bin/bash", "-c", KILLER_SCRIPT], KILL_GRACE)
            if b"theappapp-killed" in output:
                return
            log.debug("in-container killer did not finish: %r", output[-200:])
        except (TimeoutError, SandboxError, docker.errors.APIError, OSError) as err:
            log.debug("in-container killer failed: %r", err)
        if target.host_kill and target.cgroup is not None and target.cgroup.memory is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(None, host_kill, target.cgroup), HOST_KILL_GRACE
                )


def host_kill(cgroup: ContainerCgroup, rounds: int = 3) -> None:
    """Freeze the container's cgroup, SIGKILL all but init and the keeper, thaw. Best effort."""
    memory = cgroup.memory
    if memory is None:
        return
    if cgroup.version == 2:
        freeze, state, frozen, thawed = memory / "cgroup.freeze", memory / "cgroup.events", "1", "0"
    else:
        freeze = Path(str(memory).replace("/memory/", "/freezer/", 1)) / "freezer.state"
        state, frozen, thawed = freeze, "FROZEN", "THAWED"
    for _ in range(rounds):
        try:
            freeze.write_text(frozen)
            # Listing while still FREEZING would miss children forked meanwhile.
            for _ in range(100):
                text = state.read_text()
                if (cgroup.version == 1 and text.strip() == "FROZEN") or "frozen 1" in text:
                    break
                time.sleep(0.01)
            procs = [int(p) for f in _procs_files(cgroup.version, memory) for p in _read_procs(f)]
            ns = {pid: _ns_pid(pid) for pid in procs}
            inner = sorted(n for n in ns.values() if n is not None and n > 1)
            spare = {1, inner[0]} if inner else {1}
            victims = [pid for pid, nspid in ns.items() if nspid is not None and nspid not in spare]
            for pid in victims:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        except OSError as err:
            log.debug("host-side kill failed: %r", err)
            victims = []
        finally:
            with contextlib.suppress(OSError):
                freeze.write_text(thawed)
        if not victims:
            return
        time.sleep(0.05)


def _procs_files(version: int, directory: Path) -> list[Path]:
    """Where the container's processes are listed. On cgroup v2 the runtime may put them in a child of the
    container's cgroup (crun under systemd: `<scope>/container`); a freeze covers the children too."""
    return sorted(directory.rglob("cgroup.procs")) if version == 2 else [directory / "cgroup.procs"]


def _read_procs(path: Path) -> list[str]:
    """A cgroup's process list; empty if it went meanwhile (a child cgroup removed while we listed)."""
    try:
        return path.read_text().split()
    except OSError:
        return []


def _ns_pid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None

