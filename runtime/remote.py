"""`RemoteContainerManager`: the manager's API over a `theappapp-sandbox serve` on another machine.

    manager = RemoteContainerManager("http://sandbox-host:8420", token)   # instead of get_container_manager()
    await manager.create_container("t1", "proj", "python")
    result = await manager.exec_command("t1", "python3 -V")

Same async methods, same result types, same exceptions (the server names the `runtime.errors`
class of each failure, see runtime/server/status.py). Needs only httpx2 (`[remote]` extra): the
maintained fork of httpx, also the MCP SDK's client.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx2

from runtime.errors import EngineUnavailable, InvalidRequest, TaskNotFound
from runtime.sandbox.execution import ExecResult, OutputChunk
from runtime.sandbox.files import FileEntry
from runtime.sandbox.runcode import RunResult
from runtime.sandbox.tasks import ContainerInfo
from runtime.server.status import error_from
from runtime.validation.findings import Finding

# A command may run for its whole timeout before the answer comes: no read timeout of our own.
DEFAULT_TIMEOUT = httpx2.Timeout(30.0, read=None)


class RemoteContainerManager:
    def __init__(self, base_url: str, token: str | None = None, *, client: httpx2.AsyncClient | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx2.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                                   timeout=DEFAULT_TIMEOUT)

    async def __aenter__(self) -> RemoteContainerManager:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, err: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Close the connection pool (the server keeps the tasks: destroy them first)."""
        await self._client.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx2.TransportError as err:
            raise EngineUnavailable(f"sandbox service not reachable at {self._client.base_url}: {err}") from err
        if response.status_code >= 400:
            raise _error(response.status_code, response.content)
        return response

    # -- tasks -----------------------------------------------------------------------------------

    async def create_container(self, task_id: str, project_id: str, language: str, *,
                               network: str | None = None) -> ContainerInfo:
        body = {"task_id": task_id, "project_id": project_id, "language": language, "network": network}
        return ContainerInfo(**(await self._call("POST", "/v1/tasks", json=body)).json())

    async def list_tasks(self) -> list[ContainerInfo]:
        return [ContainerInfo(**t) for t in (await self._call("GET", "/v1/tasks")).json()]

    async def task_info(self, task_id: str) -> ContainerInfo:
        return ContainerInfo(**(await self._call("GET", f"/v1/tasks/{_seg(task_id)}")).json())

    async def destroy_container(self, task_id: str) -> bool:
        """True if there was one; idempotent, as the library's."""
        try:
            await self._call("DELETE", f"/v1/tasks/{_seg(task_id)}")
        except TaskNotFound:
            return False
        return True

    # -- commands ----------------------------------------------------------------------------------

    async def exec_command(self, task_id: str, command: str, *, timeout: float | None = None,
                           env: Mapping[str, str] | None = None, workdir: str | None = None,
                           stdin: str | bytes | None = None) -> ExecResult:
        body = _exec_body(command, timeout, env, workdir, stdin)
        return _exec_result((await self._call("POST", f"/v1/tasks/{_seg(task_id)}/exec", json=body)).json())

    def exec_stream(self, task_id: str, command: str, *, timeout: float | None = None,
                    env: Mapping[str, str] | None = None, workdir: str | None = None,
                    stdin: str | bytes | None = None) -> RemoteExecStream:
        """`async for chunk in manager.exec_stream(...)`; the stream's `result` is set at the end."""
        return RemoteExecStream(self, f"/v1/tasks/{_seg(task_id)}/exec", _exec_body(command, timeout, env, workdir,
                                                                                     stdin))

    async def run_code(self, task_id: str, code: str, filename: str | None = None, *, strict: bool = False,
                       timeout: float | None = None) -> RunResult:
        body = {"code": code, "filename": filename, "timeout": timeout, "strict": strict}
        return _run_result((await self._call("POST", f"/v1/tasks/{_seg(task_id)}/run", json=body)).json())

    async def run(self, language: str, code: str, *, project_id: str | None = None,
                  timeout: float | None = None) -> RunResult:
        """One-shot: a fresh sandbox runs the code and is destroyed (POST /v1/run)."""
        body = {"language": language, "code": code, "project_id": project_id, "timeout": timeout}
        return _run_result((await self._call("POST", "/v1/run", json=body)).json())

    # -- files ---------------------------------------------------------------------------------------

    async def write_files(self, task_id: str, files: Mapping[str, str | bytes]) -> list[str]:
        written = []
        for path, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            response = await self._call("PUT", f"/v1/tasks/{_seg(task_id)}/files/{_path(path)}", content=data)
            written.append(response.json()["path"])
        return written

    async def read_file(self, task_id: str, path: str) -> bytes:
        return (await self._call("GET", f"/v1/tasks/{_seg(task_id)}/files/{_path(path)}")).content

    async def list_files(self, task_id: str, path: str = ".") -> list[FileEntry]:
        response = await self._call("GET", f"/v1/tasks/{_seg(task_id)}/files", params={"path": path})
        return [FileEntry(**entry) for entry in response.json()]


class RemoteExecStream:
    """Server-sent output events as `OutputChunk`s; `result` once the stream is exhausted."""

    def __init__(self, manager: RemoteContainerManager, url: str, body: dict[str, Any]) -> None:
        self._manager, self._url, self._body = manager, url, body
        self.result: ExecResult | None = None

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return self._events()

    async def _events(self) -> AsyncIterator[OutputChunk]:
        client = self._manager._client
        headers = {"Accept": "text/event-stream"}
        try:
            async with client.stream("POST", self._url, json=self._body, headers=headers) as response:
                if response.status_code >= 400:
                    raise _error(response.status_code, await response.aread())
                event = "message"
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        if event in ("stdout", "stderr"):
                            yield OutputChunk(event, data["data"].encode("utf-8"))  # type: ignore[arg-type]
                        elif event == "result":
                            self.result = _exec_result(data)
                        elif event == "error":
                            raise _error(500, json.dumps(data).encode())
        except httpx2.TransportError as err:
            raise EngineUnavailable(f"sandbox service not reachable: {err}") from err

    async def collect(self) -> ExecResult:
        async for _ in self:
            pass
        if self.result is None:
            raise EngineUnavailable("the output stream ended before its result")
        return self.result


def _error(status: int, content: bytes) -> Exception:
    body: object = None
    with contextlib.suppress(ValueError):
        body = json.loads(content)
    return error_from(status, body)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _path(path: str) -> str:
    """Every character encoded, "/" too: a ".." segment would otherwise be resolved by the HTTP client
    before it is sent, and the server must see (and refuse) the path as the caller wrote it."""
    return quote(path, safe="")


def _exec_body(command: str, timeout: float | None, env: Mapping[str, str] | None, workdir: str | None,
               stdin: str | bytes | None) -> dict[str, Any]:
    if isinstance(stdin, bytes):
        try:
            stdin = stdin.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the service takes stdin as UTF-8 text") from None
    return {"command": command, "timeout": timeout, "env": dict(env) if env else None, "workdir": workdir,
            "stdin": stdin}


def _exec_result(data: dict[str, Any]) -> ExecResult:
    return ExecResult(
        exit_code=data["exit_code"], stdout=data["stdout"], stderr=data["stderr"], duration=data["duration"],
        timed_out=data["timed_out"], oom_killed=data["oom_killed"], truncated=data["truncated"],
        stdout_bytes=len(data["stdout"].encode()), stderr_bytes=len(data["stderr"].encode()),
    )


def _run_result(data: dict[str, Any]) -> RunResult:
    findings = tuple(Finding(**f) for f in data["findings"])
    return RunResult(exec=_exec_result(data), findings=findings, filename=data["filename"], command=data["command"])
