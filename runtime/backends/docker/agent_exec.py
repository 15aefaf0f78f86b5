"""A command run by the sandbox agent: the request out, output chunks and the exit back over the channel.

The agent enforces the timeout and the output caps itself; the manager keeps its own deadline
(the timeout plus a grace) so an agent that stalls cannot hang the call, and it still reads OOM
kills from the container's cgroup and notices a container that died under the command, as the
engine-exec path does (`exec.Executor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable

from runtime.agent.sandbox_agent import MAX_PAYLOAD
from runtime.backends.docker.agent_channel import AgentChannel, AgentLost, raise_for
from runtime.backends.docker.exec import LIVENESS_EVERY, Capture, ExecTarget, Executor
from runtime.errors import SandboxFailure
from runtime.sandbox.execution import ExecRequest, ExecResult, OutputChunk
from runtime.sandbox.interactive import Interactive

# Past the command's own timeout, the agent has this long to report it killed the command.
AGENT_GRACE = 2.0
CANCEL_GRACE = 2.0  # an abandoned command's kill, reported back
STREAMS = {1: "stdout", 2: "stderr"}
UNCAPPED = 1 << 62  # an interactive command streams for as long as it runs; its owner bounds what it keeps
INTERACTIVE_ALLOWANCE = 8 * 1024 * 1024


async def run(
    channel: AgentChannel, executor: Executor, target: ExecTarget, request: ExecRequest,
    finish: Callable[[ExecResult], None],
) -> AsyncGenerator[OutputChunk, None]:
    t0 = time.monotonic()
    deadline = t0 + request.timeout + AGENT_GRACE
    oom_before = target.cgroup.oom_kills() if target.cgroup else None
    # An interactive command's owner keeps (and bounds) its output; the result keeps none.
    keep = 0 if request.interactive is not None else request.max_output_bytes
    out, err = Capture(keep), Capture(keep)

    def result(exit_code: int | None, timed_out: bool, oom: bool) -> ExecResult:
        return ExecResult(
            exit_code=exit_code, stdout=out.text(), stderr=err.text(), duration=time.monotonic() - t0,
            timed_out=timed_out, oom_killed=oom, truncated=out.truncated or err.truncated,
            stdout_bytes=out.total, stderr_bytes=err.total,
        )

    interactive = request.interactive
    start: dict[str, object] = {
        "op": "exec", "argv": list(request.argv), "env": dict(request.env), "cwd": request.workdir,
        "timeout": request.timeout, "cap": UNCAPPED if interactive else request.max_output_bytes,
        "stdin": request.stdin is not None or interactive is not None,
    }
    if request.terminal is not None:
        start["pty"] = {"cols": request.terminal[0], "rows": request.terminal[1]}
    # Interactive output is uncapped at the agent: the queue bound must absorb a reader's burst.
    allowance = 2 * request.max_output_bytes
    if interactive is not None:
        allowance = max(allowance, INTERACTIVE_ALLOWANCE)
    rid = await channel.start(start, allowance=allowance)
    feeding = (
        asyncio.ensure_future(_pump(channel, rid, interactive)) if interactive is not None
        else asyncio.ensure_future(_feed(channel, rid, request.stdin)) if request.stdin is not None
        else None
    )
    ended: dict[str, object] | None = None  # the exit frame
    lost: AgentLost | None = None
    died = stalled = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stalled = True
                break
            try:
                header, payload = await channel.reply(rid, min(remaining, LIVENESS_EVERY))
            except TimeoutError:
                if await executor.container_gone(target, deadline):
                    died = True
                    break
                continue
            except AgentLost as gone:
                lost = gone
                break
            kind = header.get("type")
            if kind == "out":
                stream = STREAMS.get(header.get("stream"), "stderr")  # type: ignore[arg-type]
                (out if stream == "stdout" else err).add(payload)
                yield OutputChunk("stdout" if stream == "stdout" else "stderr", payload)
            elif kind == "started" and interactive is not None and isinstance(header.get("pid"), int):
                interactive.on_started(header["pid"])
            elif kind == "exit":
                ended = header
                break
            elif kind == "error":
                raise_for(header)
    except BaseException:
        # The caller stopped listening, was cancelled, or the request was refused: nothing may outlive
        # it. The agent kills the command's tree; wait (bounded) for it to say so, as a kill would.
        with contextlib.suppress(AgentLost, TimeoutError, asyncio.CancelledError):
            await channel.send({"op": "cancel", "id": rid})
            await asyncio.wait_for(_until_exit(channel, rid), CANCEL_GRACE)
        finish(result(None, False, False))
        raise
    finally:
        if feeding is not None:
            feeding.cancel()
        channel.finish(rid)
    if ended is not None:
        code = ended.get("code")
        exit_code = code if isinstance(code, int) else None
        timed_out = bool(ended.get("timed_out"))
        # What the command wrote in all: the agent counts past the cap, where it stopped sending.
        out.total = max(out.total, _count(ended.get("out_bytes")))
        err.total = max(err.total, _count(ended.get("err_bytes")))
        oom = await executor.oom(target, oom_before, exit_code, probe_inside=not timed_out)
        finish(result(exit_code, timed_out, oom))
        return
    if stalled:  # the agent did not report in time: the engine's own killer, then a timeout
        channel.abandon("the sandbox agent did not report the end of a command in time")
        await executor.kill_all(target)
        finish(result(None, True, False))
        return
    if lost is not None and not died and await executor.still_running(target.container_id):
        # The container lives, its agent's stream does not (garbled or replaced from inside).
        finish(result(None, False, False))
        raise SandboxFailure(f"the sandbox agent stopped answering during the command: {lost}")
    # The command went down with its container (the agent is its main process): the container's end is its end.
    exit_code, oom = await executor.container_end(target.container_id)
    finish(result(exit_code, False, oom))


async def _feed(channel: AgentChannel, rid: int, data: bytes | None) -> None:
    """The request's stdin, in frames, then end-of-file."""
    with contextlib.suppress(AgentLost):
        for i in range(0, len(data or b""), MAX_PAYLOAD):
            await channel.send({"op": "stdin", "id": rid}, (data or b"")[i:i + MAX_PAYLOAD])
        await channel.send({"op": "stdin_close", "id": rid})


async def _pump(channel: AgentChannel, rid: int, interactive: Interactive) -> None:
    """What the command's owner puts in, as it comes: stdin frames, end-of-file, signals."""
    with contextlib.suppress(AgentLost):
        while True:
            kind, value = await interactive.next()
            if kind == "stdin" and isinstance(value, bytes):
                for i in range(0, len(value), MAX_PAYLOAD):
                    await channel.send({"op": "stdin", "id": rid}, value[i:i + MAX_PAYLOAD])
            elif kind == "close":
                await channel.send({"op": "stdin_close", "id": rid})
            elif kind == "signal":
                await channel.send({"op": "signal", "id": rid, "signal": value})
            elif kind == "resize" and isinstance(value, tuple):
                await channel.send({"op": "resize", "id": rid, "cols": value[0], "rows": value[1]})


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


async def _until_exit(channel: AgentChannel, rid: int) -> None:
    while (await channel.reply(rid))[0].get("type") not in ("exit", "error"):
        pass
