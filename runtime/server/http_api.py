"""The HTTP API (FastAPI): tasks, commands, files and one-shot runs under /v1; /healthz; /metrics; /mcp.

Every /v1 call is authenticated here (`Authorization: Bearer <token>`) unless the service runs
without a token file (loopback only: the CLI refuses anything else), then confined by the broker.
Errors answer `{"error": <runtime.errors class name>, "detail": <message>}` with the status
`status.py` gives it. Answers that waited on the manager say how long in `Server-Timing` (timing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from runtime.errors import BodyTooLarge, EngineUnavailable, SandboxError, ValidationFailed
from runtime.ops.scheduler import CleanupScheduler
from runtime.server import schemas
from runtime.server.auth import Caller, ServiceOptions, Unauthorized, authenticate, error_response
from runtime.server.broker import TaskBroker
from runtime.server.events import exec_events
from runtime.server.keys import SCOPE_KEY
from runtime.server.stateful import StatefulBroker
from runtime.server.stateful_routes import add_stateful_routes
from runtime.server.status import status_of
from runtime.server.timing import ServerTiming, in_manager
from runtime.server.tokens import DEFAULT_MAX_BODY, TokenStore

log = logging.getLogger(__name__)



def create_app(broker: TaskBroker, options: ServiceOptions | None = None) -> ASGIApp:
    """The whole service as one ASGI app: FastAPI for /v1 and the rest, the MCP transport for /mcp."""
    options = options or ServiceOptions()
    state = StatefulBroker(broker)
    mcp_http = None
    if options.mcp:
        from runtime.server.mcp_tools import McpHttp

        mcp_http = McpHttp(broker, state, options)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mcp_http is not None:
                await stack.enter_async_context(mcp_http.running())
            if options.cleanup_interval:
                # Tasks a caller never deleted expire (`container_ttl`); this removes them, as the library's job does.
                cleanup = CleanupScheduler(broker.manager.config, interval=options.cleanup_interval)
                cleanup.start()
                stack.push_async_callback(cleanup.stop)
            try:
                yield
            finally:
                await broker.close()

    api = FastAPI(title="TheAppApp Sandbox", version="1", lifespan=lifespan,
                  description="Hardened per-task code-execution sandboxes for AI agents.")
    api.state.options = options
    _routes(api, broker, options)
    add_stateful_routes(api, state)
    body_cap = max([DEFAULT_MAX_BODY, *(t.scope.max_body_bytes for t in _stored(options.tokens))])
    inner: ASGIApp = ServerTiming(BodyLimit(api, body_cap))
    if mcp_http is None:
        return inner
    return McpRouter(inner, mcp_http.asgi, options.tokens)


def _stored(tokens: TokenStore | None) -> list[Any]:
    from runtime.server.tokens import read_tokens

    return read_tokens(tokens.path) if tokens is not None else []


def _routes(api: FastAPI, broker: TaskBroker, options: ServiceOptions) -> None:
    @api.exception_handler(Unauthorized)
    async def unauthorized(_: Request, __: Exception) -> JSONResponse:
        return error_response(401, "Unauthorized", "a valid `Authorization: Bearer <token>` is required",
                              {"WWW-Authenticate": "Bearer"})

    @api.exception_handler(SandboxError)
    async def sandbox_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, SandboxError)
        status = status_of(err)
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(err).__name__, err)
        response = error_response(status, type(err).__name__, str(err))
        if isinstance(err, ValidationFailed):  # the remote client rebuilds the exception with its findings
            body = {"error": type(err).__name__, "detail": str(err),
                    "findings": [schemas.FindingOut.of(f).model_dump() for f in err.findings]}
            response = JSONResponse(body, status_code=status)
        return response

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return error_response(422, "InvalidRequest", detail)

    @api.post("/v1/tasks", status_code=201, response_model=schemas.TaskOut)
    async def create_task(body: schemas.CreateTask, scope: Caller) -> schemas.TaskOut:
        with in_manager():
            info = await broker.create(scope, body.task_id, body.project_id, body.language, network=body.network)
        return schemas.TaskOut.of(info)

    @api.get("/v1/tasks", response_model=list[schemas.TaskOut])
    async def list_tasks(scope: Caller) -> list[schemas.TaskOut]:
        return [schemas.TaskOut.of(info) for info in broker.tasks(scope)]

    @api.get("/v1/tasks/{task_id}", response_model=schemas.TaskOut)
    async def get_task(task_id: str, scope: Caller) -> schemas.TaskOut:
        return schemas.TaskOut.of(broker.info(scope, task_id))

    @api.delete("/v1/tasks/{task_id}", status_code=204)
    async def destroy_task(task_id: str, scope: Caller) -> Response:
        with in_manager():
            await broker.destroy(scope, task_id)
        return Response(status_code=204)

    @api.post("/v1/tasks/{task_id}/exec", response_model=schemas.ExecOut,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "the result; with `Accept: text/event-stream`, "
                               "`stdout`/`stderr` events as output arrives, then a `result` event"}})
    async def exec_command(task_id: str, body: schemas.Exec, request: Request, scope: Caller) -> Any:
        stream = broker.exec_stream(scope, task_id, body.command, timeout=body.timeout, stdin=body.stdin,
                                    env=body.env, workdir=body.workdir)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(exec_events(stream), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        # Serialized here: FastAPI would validate the model it was just built from once more (`response_model`
        # still documents it). The hottest route: an agent's every command.
        with in_manager():
            result = await stream.collect()
        return Response(schemas.ExecOut.of(result).model_dump_json(), media_type="application/json")

    @api.put("/v1/tasks/{task_id}/files/{path:path}", status_code=201, response_model=schemas.Written)
    async def put_file(task_id: str, path: str, request: Request, scope: Caller) -> schemas.Written:
        data = await request.body()
        with in_manager():
            written = await broker.write_file(scope, task_id, path, data)
        return schemas.Written(path=written, size=len(data))

    @api.get("/v1/tasks/{task_id}/files/{path:path}", response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}})
    async def get_file(task_id: str, path: str, scope: Caller) -> Response:
        with in_manager():
            data = await broker.read_file(scope, task_id, path)
        return Response(data, media_type="application/octet-stream")

    @api.get("/v1/tasks/{task_id}/files", response_model=list[schemas.FileOut])
    async def list_files(task_id: str, scope: Caller,
                         path: Annotated[str, Query(description="a directory under /workspace")] = ".",
                         ) -> list[schemas.FileOut]:
        with in_manager():
            entries = await broker.list_files(scope, task_id, path)
        return [schemas.FileOut.of(e) for e in entries]

    @api.post("/v1/tasks/{task_id}/run", response_model=schemas.RunOut)
    async def run_in_task(task_id: str, body: schemas.RunInTask, scope: Caller) -> schemas.RunOut:
        with in_manager():
            result = await broker.run_code(scope, task_id, body.code, body.filename, timeout=body.timeout,
                                           strict=body.strict)
        return schemas.RunOut.of_run(result)

    @api.post("/v1/run", response_model=schemas.RunOut)
    async def run(body: schemas.Run, scope: Caller) -> schemas.RunOut:
        with in_manager():
            result = await broker.run_once(scope, body.language, body.code, project_id=body.project_id,
                                           timeout=body.timeout)
        return schemas.RunOut.of_run(result)

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            facts = await asyncio.wait_for(broker.manager.backend.probe(), 10)
        except (TimeoutError, SandboxError, OSError) as err:
            detail = str(err) or type(err).__name__
            return error_response(503, EngineUnavailable.__name__, f"engine not reachable: {detail}")
        return JSONResponse({"status": "ok", "engine": facts.version, "tasks": len(broker.manager.tasks)})

    @api.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        try:
            import prometheus_client
        except ImportError:
            return error_response(501, "ConfigError", "prometheus-client is not installed")
        # The monitor records executions, lifecycle and pool events into the process-wide registry.
        live = f"theappapp_sandbox_service_tasks {len(broker.manager.tasks)}\n"
        text = prometheus_client.generate_latest().decode() + "# TYPE theappapp_sandbox_service_tasks gauge\n" + live
        return Response(text, media_type=prometheus_client.CONTENT_TYPE_LATEST)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before the app reads them into memory.

    A declared Content-Length over the limit is refused at once; a chunked body is counted as it
    arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            buffered = await self._buffered(receive)
            if buffered is None:
                await _too_large(self.limit)(scope, _empty, send)
                return
            receive = buffered
        await self.app(scope, receive, send)

    async def _buffered(self, receive: Receive) -> Receive | None:
        """A chunked body read here, counted, and replayed to the app; None once it passes the limit."""
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            received += len(message.get("body", b""))
            if received > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        return replayed


async def _empty() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


def _too_large(limit: int) -> JSONResponse:
    return error_response(413, BodyTooLarge.__name__, f"request body over the service's limit of {limit} bytes")


class McpRouter:
    """/mcp goes to the MCP transport (authenticated here, the scope passed on); the rest to `app`."""

    def __init__(self, app: ASGIApp, mcp: Callable[[AsgiScope, Receive, Send], Awaitable[None]],
                 tokens: TokenStore | None) -> None:
        self.app, self.mcp, self.tokens = app, mcp, tokens

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/mcp":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            scope[SCOPE_KEY] = authenticate(self.tokens, headers.get("authorization"))
        except Unauthorized:
            await error_response(401, "Unauthorized", "a valid `Authorization: Bearer <token>` is required",
                                 {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.mcp(scope, receive, send)
