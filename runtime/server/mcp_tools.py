"""The MCP server (official `mcp` SDK): the sandbox's operations as tools an LLM can call.

One tool set, two transports: stdio (`theappapp-sandbox mcp`, the local user's rights, or a
token's scope with THEAPPAPP_TOKEN) and streamable HTTP at /mcp of `serve` (the caller's token).
Sandboxes belong to the connection that created them: on stdio they are destroyed when the
client closes the pipe; over HTTP when the client ends its session (DELETE /mcp) or, for a
client without a session (the sessionless 2026 protocol era), once none of its sandboxes has been
used for the idle timeout. Tool errors come back as error results naming the runtime's error class.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from runtime.server import schemas
from runtime.server.broker import TaskBroker
from runtime.server.keys import SCOPE_KEY
from runtime.server.mcp_state_tools import add_state_tools, call
from runtime.server.stateful import StatefulBroker
from runtime.server.tokens import LOCAL, Scope

if TYPE_CHECKING:
    from runtime.server.auth import ServiceOptions

STDIO_GROUP = "mcp:stdio"
INSTRUCTIONS = (
    "Run code in hardened, isolated sandboxes. For one program, call run_code. For several steps, call "
    "create_sandbox once, then exec, write_file, read_file and list_files with its sandbox_id, and "
    "destroy_sandbox at the end. Files live under /workspace and persist per project_id. To keep variables "
    "between steps, start_session (python, node, shell, …) and run_in_session; for servers and long jobs, "
    "start_process, then process_output and stop_process."
)

SandboxId = Annotated[str, Field(description="the sandbox_id create_sandbox returned")]
Timeout = Annotated[float | None, Field(description="seconds before the command is killed; default 30", gt=0)]


def _caller(ctx: Context, default: Scope) -> tuple[Scope, str]:
    request = ctx.request_context.request
    if request is None:  # stdio: one client per process
        return default, STDIO_GROUP
    scope: Scope = request.scope.get(SCOPE_KEY, LOCAL)
    return scope, group_key(scope, request.headers.get("mcp-session-id"))


def group_key(scope: Scope, session_id: str | None) -> str:
    return f"mcp:{scope.name}:{session_id or '-'}"


def build_server(broker: TaskBroker, state: StatefulBroker, default_scope: Scope = LOCAL) -> MCPServer:
    server: MCPServer = MCPServer("theappapp-sandbox", instructions=INSTRUCTIONS)
    add_state_tools(server, state, lambda ctx: _caller(ctx, default_scope)[0])

    @server.tool()
    async def run_code(
        language: Annotated[str, Field(description="python, node, typescript, java, go, ruby, php, bash, …")],
        code: Annotated[str, Field(description="the whole program")],
        ctx: Context,
        project_id: Annotated[str | None, Field(description="run in this project's files; default: a fresh "
                                                "empty workspace, discarded after")] = None,
        timeout: Timeout = None,
    ) -> dict[str, Any]:
        """Run one program in a fresh sandbox and return its output, exit code and the validator's findings.

        The sandbox is destroyed afterwards. Use create_sandbox instead to keep state between steps."""
        scope, _ = _caller(ctx, default_scope)
        result = await call(broker.run_once(scope, language, code, project_id=project_id, timeout=timeout))
        return schemas.RunOut.of_run(result).model_dump()

    @server.tool()
    async def create_sandbox(
        language: Annotated[str, Field(description="the sandbox's language image: python, node, java, go, …")],
        ctx: Context,
        project_id: Annotated[str, Field(description="whose persistent /workspace to mount")] = "default",
        network: Annotated[Literal["sandbox", "none"] | None,
                           Field(description="sandbox: package registries reachable; none: no network")] = None,
    ) -> dict[str, Any]:
        """Start a sandbox (a hardened container) for several steps; returns its sandbox_id.

        It lives until destroy_sandbox, or until this connection ends."""
        scope, group = _caller(ctx, default_scope)
        task_id = f"mcp-{uuid.uuid4().hex[:12]}"
        info = await call(broker.create(scope, task_id, project_id, language, network=network, group=group))
        return {"sandbox_id": info.task_id, **schemas.TaskOut.of(info).model_dump(exclude={"task_id"})}

    @server.tool(name="exec")
    async def exec_(
        sandbox_id: SandboxId,
        command: Annotated[str, Field(description="a shell command, run in /workspace")],
        ctx: Context,
        timeout: Timeout = None,
        stdin: Annotated[str | None, Field(description="text fed to the command's standard input")] = None,
    ) -> dict[str, Any]:
        """Run a shell command in the sandbox; returns exit_code, stdout, stderr, duration and timed_out."""
        scope, _ = _caller(ctx, default_scope)
        result = await call(broker.exec(scope, sandbox_id, command, timeout=timeout, stdin=stdin))
        return schemas.ExecOut.of(result).model_dump()

    @server.tool()
    async def write_file(
        sandbox_id: SandboxId,
        path: Annotated[str, Field(description="relative to /workspace; parent directories are created")],
        content: Annotated[str, Field(description="the file's text (UTF-8)")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Write a text file into the sandbox's /workspace."""
        scope, _ = _caller(ctx, default_scope)
        data = content.encode("utf-8")
        written = await call(broker.write_file(scope, sandbox_id, path, data))
        return {"path": written, "size": len(data)}

    @server.tool()
    async def read_file(
        sandbox_id: SandboxId,
        path: Annotated[str, Field(description="relative to /workspace")],
        ctx: Context,
    ) -> str:
        """Read a file from the sandbox's /workspace as text (bytes that are not UTF-8 show as U+FFFD)."""
        scope, _ = _caller(ctx, default_scope)
        data: bytes = await call(broker.read_file(scope, sandbox_id, path))
        return data.decode("utf-8", "replace")

    @server.tool()
    async def list_files(
        sandbox_id: SandboxId,
        ctx: Context,
        path: Annotated[str, Field(description="a directory relative to /workspace")] = ".",
    ) -> list[dict[str, Any]]:
        """List a directory of the sandbox's /workspace: each entry's name, type, size and mtime."""
        scope, _ = _caller(ctx, default_scope)
        entries = await call(broker.list_files(scope, sandbox_id, path))
        return [schemas.FileOut.of(e).model_dump() for e in entries]

    @server.tool()
    async def destroy_sandbox(sandbox_id: SandboxId, ctx: Context) -> str:
        """Destroy the sandbox (its project's files stay)."""
        scope, _ = _caller(ctx, default_scope)
        await call(broker.destroy(scope, sandbox_id))
        return f"sandbox {sandbox_id} destroyed"

    return server


async def run_stdio(broker: TaskBroker, scope: Scope = LOCAL) -> None:
    """Serve one client on stdin/stdout; its sandboxes are destroyed when it goes."""
    try:
        await build_server(broker, StatefulBroker(broker), scope).run_stdio_async()
    finally:
        await broker.close()


class McpHttp:
    """The MCP server over streamable HTTP, for `serve` to route /mcp to (after authenticating)."""

    def __init__(self, broker: TaskBroker, state: StatefulBroker, options: ServiceOptions) -> None:
        self.broker = broker
        self.idle_timeout = options.mcp_idle_timeout
        self.server = build_server(broker, state)
        self._app = self.server.streamable_http_app(
            streamable_http_path="/mcp", session_idle_timeout=options.mcp_idle_timeout, host=options.host)

    async def asgi(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
        session_id = dict(scope["headers"]).get(b"mcp-session-id")
        if scope["method"] == "DELETE" and session_id:  # the client ended its session: so do its sandboxes
            await self.broker.destroy_group(group_key(scope.get(SCOPE_KEY, LOCAL), session_id.decode("latin-1")))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            reaper = asyncio.create_task(self._reap())
            try:
                yield
            finally:
                reaper.cancel()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.idle_timeout / 4))
            await self.broker.reap_idle(self.idle_timeout)
