"""MCP tools for state inside a sandbox: interpreter and shell sessions, and background processes."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from runtime.errors import SandboxError
from runtime.server.stateful import StatefulBroker
from runtime.server.tokens import Scope

SandboxId = Annotated[str, Field(description="the sandbox_id create_sandbox returned")]
SessionId = Annotated[str, Field(description="the session_id start_session returned")]
Pid = Annotated[int, Field(description="the pid start_process returned")]


async def call(coro: Awaitable[Any]) -> Any:
    """The tool's work; a runtime error becomes an error result the model can read (class and reason)."""
    try:
        return await coro
    except SandboxError as err:
        raise ToolError(f"{type(err).__name__}: {err}") from err


def add_state_tools(server: MCPServer, state: StatefulBroker, scope_of: Callable[[Context], Scope]) -> None:
    @server.tool()
    async def start_session(
        sandbox_id: SandboxId, ctx: Context,
        kind: Annotated[str, Field(description="python, node, typescript, ruby, java (the sandbox's language), "
                                   "or shell")] = "python",
    ) -> dict[str, Any]:
        """Start a session that keeps its state (variables, imports, the shell's cwd) between run_in_session calls."""
        opened = await call(state.open(scope_of(ctx), sandbox_id, kind))
        return {"session_id": opened.session_id, "kind": opened.kind}

    @server.tool()
    async def run_in_session(
        sandbox_id: SandboxId, session_id: SessionId,
        code: Annotated[str, Field(description="a cell of code (or a shell command for a shell session)")],
        ctx: Context,
        timeout: Annotated[float | None, Field(description="seconds; the cell is interrupted after", gt=0)] = None,
    ) -> dict[str, Any]:
        """Run code in the session: its output, the last expression's value, rich outputs (plots), or its error."""
        result = await call(state.run(scope_of(ctx), sandbox_id, session_id, code, timeout))
        return dataclasses.asdict(result)

    @server.tool()
    async def close_session(sandbox_id: SandboxId, session_id: SessionId, ctx: Context) -> str:
        """End the session and its interpreter (the sandbox stays)."""
        await call(state.close(scope_of(ctx), sandbox_id, session_id))
        return f"session {session_id} closed"

    @server.tool()
    async def start_process(
        sandbox_id: SandboxId,
        command: Annotated[str, Field(description="a shell command to run in the background (a server, a watcher)")],
        ctx: Context,
        name: Annotated[str | None, Field(description="a label for it")] = None,
    ) -> dict[str, Any]:
        """Start a command in the background; it runs until it exits, stop_process, or the sandbox ends."""
        return dataclasses.asdict(await call(state.start_process(scope_of(ctx), sandbox_id, command, name)))

    @server.tool()
    async def process_output(sandbox_id: SandboxId, pid: Pid, ctx: Context) -> dict[str, Any]:
        """What a background process printed so far (the last MiB), and whether it still runs."""
        scope = scope_of(ctx)

        async def read() -> dict[str, Any]:
            chunks = [chunk async for chunk in state.output(scope, sandbox_id, pid)]
            info = state.process(scope, sandbox_id, pid)
            text = {s: b"".join(c.data for c in chunks if c.stream == s).decode("utf-8", "replace")
                    for s in ("stdout", "stderr")}
            return {**text, "running": info.running, "exit_code": info.exit_code}

        result: dict[str, Any] = await call(read())
        return result

    @server.tool()
    async def stop_process(
        sandbox_id: SandboxId, pid: Pid, ctx: Context,
        signal: Annotated[str, Field(description="TERM (default), KILL, INT, HUP")] = "TERM",
    ) -> str:
        """Send a signal to a background process (its whole process group)."""
        await call(state.kill(scope_of(ctx), sandbox_id, pid, signal))
        return f"sent SIG{signal.upper().removeprefix('SIG')} to {pid}"
