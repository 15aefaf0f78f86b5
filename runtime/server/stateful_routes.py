"""/v1/tasks/{task_id}/sessions and /processes: state inside a task, for HTTP callers."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import StreamingResponse

from runtime.sandbox.execution import OutputChunk
from runtime.sandbox.kernel_session import CellResult
from runtime.server import schemas
from runtime.server.auth import Caller
from runtime.server.events import output_events
from runtime.server.stateful import StatefulBroker


def add_stateful_routes(api: FastAPI, state: StatefulBroker) -> None:
    sessions = "/v1/tasks/{task_id}/sessions"
    processes = "/v1/tasks/{task_id}/processes"

    @api.post(sessions, status_code=201, response_model=schemas.SessionOut)
    async def open_session(task_id: str, body: schemas.OpenSession, scope: Caller) -> schemas.SessionOut:
        opened = await state.open(scope, task_id, body.kind)
        return schemas.SessionOut(session_id=opened.session_id, task_id=task_id, kind=opened.kind)

    @api.get(sessions, response_model=list[schemas.SessionOut])
    async def list_sessions(task_id: str, scope: Caller) -> list[schemas.SessionOut]:
        return [schemas.SessionOut(session_id=s.session_id, task_id=task_id, kind=s.kind)
                for s in state.sessions(scope, task_id)]

    @api.post(sessions + "/{session_id}/run", response_model=schemas.ShellOut | schemas.CellOut)
    async def run_in_session(task_id: str, session_id: str, body: schemas.SessionRun,
                             scope: Caller) -> schemas.ShellOut | schemas.CellOut:
        result = await state.run(scope, task_id, session_id, body.code, body.timeout)
        if isinstance(result, CellResult):
            return schemas.CellOut.model_validate(dataclasses.asdict(result))
        return schemas.ShellOut.model_validate(dataclasses.asdict(result))

    @api.post(sessions + "/{session_id}/interrupt", status_code=204)
    async def interrupt_session(task_id: str, session_id: str, scope: Caller) -> Response:
        await state.interrupt(scope, task_id, session_id)
        return Response(status_code=204)

    @api.delete(sessions + "/{session_id}", status_code=204)
    async def close_session(task_id: str, session_id: str, scope: Caller) -> Response:
        await state.close(scope, task_id, session_id)
        return Response(status_code=204)

    @api.post(processes, status_code=201, response_model=schemas.ProcessOut)
    async def start_process(task_id: str, body: schemas.StartProcess, scope: Caller) -> schemas.ProcessOut:
        info = await state.start_process(scope, task_id, body.command, body.name, body.env, body.workdir)
        return schemas.ProcessOut.model_validate(dataclasses.asdict(info))

    @api.get(processes, response_model=list[schemas.ProcessOut])
    async def list_processes(task_id: str, scope: Caller) -> list[schemas.ProcessOut]:
        return [schemas.ProcessOut.model_validate(dataclasses.asdict(p)) for p in state.processes(scope, task_id)]

    @api.get(processes + "/{pid}", response_model=schemas.ProcessOut)
    async def get_process(task_id: str, pid: int, scope: Caller) -> schemas.ProcessOut:
        return schemas.ProcessOut.model_validate(dataclasses.asdict(state.process(scope, task_id, pid)))

    @api.get(processes + "/{pid}/output", response_model=schemas.ProcessOutput,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "what is kept; with `Accept: text/event-stream` and follow=true, "
                              "then what comes until it exits"}})
    async def process_output(task_id: str, pid: int, request: Request, scope: Caller,
                             follow: Annotated[bool, Query()] = False) -> object:
        chunks = state.output(scope, task_id, pid, follow)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(output_events(chunks), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store"})
        return _joined([chunk async for chunk in chunks])

    @api.post(processes + "/{pid}/stdin", status_code=204)
    async def send_stdin(task_id: str, pid: int, request: Request, scope: Caller) -> Response:
        await state.send_stdin(scope, task_id, pid, await request.body())
        return Response(status_code=204)

    @api.post(processes + "/{pid}/wait", response_model=schemas.ProcessOut)
    async def wait_process(task_id: str, pid: int, scope: Caller,
                           timeout: Annotated[float | None, Query(gt=0)] = None) -> schemas.ProcessOut:
        info = await state.wait(scope, task_id, pid, timeout)
        return schemas.ProcessOut.model_validate(dataclasses.asdict(info))

    @api.delete(processes + "/{pid}", status_code=204)
    async def kill_process(task_id: str, pid: int, scope: Caller,
                           signal: Annotated[str, Query(description="TERM, KILL, INT, HUP, …")] = "TERM",
                           ) -> Response:
        await state.kill(scope, task_id, pid, signal)
        return Response(status_code=204)


def _joined(chunks: list[OutputChunk]) -> schemas.ProcessOutput:
    out = b"".join(c.data for c in chunks if c.stream == "stdout")
    err = b"".join(c.data for c in chunks if c.stream == "stderr")
    return schemas.ProcessOutput(stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"))
