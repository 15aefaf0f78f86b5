"""The MCP server, driven with the official SDK's own client: over stdio (`theappapp-sandbox mcp`) and over
streamable HTTP at /mcp of `serve`, in both protocol eras (the 2025 handshake with a session, and the
sessionless 2026 one). Sandboxes a client leaves behind must be destroyed when its connection ends.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from runtime.registry import Language
from tests.integration.serving import Service, add_token, containers_of, service_env, serving

pytestmark = pytest.mark.integration

TOOLS = {"run_code", "create_sandbox", "exec", "write_file", "read_file", "list_files", "destroy_sandbox",
         "start_session", "run_in_session", "close_session", "start_process", "process_output", "stop_process"}


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("mcp-tokens") / "tokens.json"
    return path, add_token(path, "agent", "--projects", "mcp-*", "--projects", "default")


@pytest.fixture(scope="module")
def service(docker_client: docker.DockerClient, token_file: tuple[Path, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("mcp-serve"), "--tokens", str(token_file[0]),
                 "--mcp-idle-timeout", "120") as running:  # longer than any test: what ends a sandbox is the session
        yield running


def http_client(service: Service, token: str, mode: str = "legacy") -> Client:
    transport = streamable_http_client(f"{service.url}/mcp",
                                       http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}))
    return Client(transport, mode=mode)  # type: ignore[arg-type]


def result_of(result: Any) -> Any:
    """A tool's structured result (a non-object return value comes wrapped as {"result": ...})."""
    assert not result.is_error, result.content
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


async def gone(client: docker.DockerClient, task_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while containers_of(client, [task_id]):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def use_a_sandbox(client: Client) -> str:
    """create → write → exec → read → list, as an agent would; returns the sandbox id (left running)."""
    created = result_of(await client.call_tool("create_sandbox", {"language": "python", "project_id": "default"}))
    sid = created["sandbox_id"]
    assert result_of(await client.call_tool("write_file", {"sandbox_id": sid, "path": "hello.py",
                                                           "content": "print('hi from', __name__)\n"}))["size"] == 27
    ran = result_of(await client.call_tool("exec", {"sandbox_id": sid, "command": "python3 hello.py > out.txt"}))
    assert ran["exit_code"] == 0
    assert result_of(await client.call_tool("read_file", {"sandbox_id": sid, "path": "out.txt"})) == \
        "hi from __main__\n"
    listing = result_of(await client.call_tool("list_files", {"sandbox_id": sid}))
    names = [entry["name"] for entry in listing]
    assert {"hello.py", "out.txt"} <= set(names)
    return str(sid)


async def test_stdio_lists_described_tools_and_destroys_what_the_client_leaves(
        docker_client: docker.DockerClient, python_image: Language) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "runtime.cli", "mcp"], env=service_env())
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 20
            schema = tool.input_schema
            assert schema["type"] == "object"
            assert all(prop.get("description") for prop in schema["properties"].values()), tool.name
        assert tools["exec"].input_schema["required"] == ["sandbox_id", "command"]

        once = result_of(await client.call_tool("run_code", {"language": "python", "code": "print(6 * 7)"}))
        assert once["stdout"] == "42\n" and once["exit_code"] == 0

        sid = await use_a_sandbox(client)
        assert containers_of(docker_client, [sid])
        session = result_of(await client.call_tool("start_session", {"sandbox_id": sid, "kind": "python"}))
        for code, value in (("import math\nr = 2", None), ("round(math.pi * r ** 2, 2)", "12.57")):
            cell = result_of(await client.call_tool("run_in_session", {"sandbox_id": sid, "code": code,
                                                                       "session_id": session["session_id"]}))
            assert cell["value"] == value and cell["error"] is None
        proc = result_of(await client.call_tool("start_process", {"sandbox_id": sid, "command": "echo up; sleep 60"}))
        for _ in range(50):
            out = result_of(await client.call_tool("process_output", {"sandbox_id": sid, "pid": proc["pid"]}))
            if out["stdout"]:
                break
            await asyncio.sleep(0.1)
        assert out == {"stdout": "up\n", "stderr": "", "running": True, "exit_code": None}
        result_of(await client.call_tool("stop_process", {"sandbox_id": sid, "pid": proc["pid"]}))
        bad = await client.call_tool("read_file", {"sandbox_id": sid, "path": "../../etc/passwd"})
        assert bad.is_error and "InvalidPath" in bad.content[0].text
    assert await gone(docker_client, sid, within=30)  # the client went: so did its sandbox


async def test_http_with_a_session_destroys_its_sandboxes_when_the_session_ends(
        service: Service, token_file: tuple[Path, str], docker_client: docker.DockerClient,
        python_image: Language) -> None:
    async with http_client(service, token_file[1], mode="legacy") as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        sid = await use_a_sandbox(client)
        denied = await client.call_tool("create_sandbox", {"language": "python", "project_id": "other"})
        assert denied.is_error and "AccessDenied" in denied.content[0].text
    assert await gone(docker_client, sid, within=30)  # the SDK client ends its session with DELETE


async def test_http_without_a_session_reaps_sandboxes_once_idle(
        token_file: tuple[Path, str], docker_client: docker.DockerClient, python_image: Language,
        tmp_path: Path) -> None:
    with serving(tmp_path, "--tokens", str(token_file[0]), "--mcp-idle-timeout", "3") as service:
        async with http_client(service, token_file[1], mode="auto") as client:  # the sessionless era
            sid = await use_a_sandbox(client)
            await asyncio.sleep(1.5)
            # still in use: a call within the idle timeout keeps it
            assert result_of(await client.call_tool("exec", {"sandbox_id": sid, "command": "true"}))["exit_code"] == 0
        assert containers_of(docker_client, [sid])  # no session to end: it stays for now
        assert await gone(docker_client, sid, within=30)  # unused for 3 s: reaped


async def test_mcp_over_http_needs_the_token(service: Service, token_file: tuple[Path, str]) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx2.AsyncClient(base_url=service.url) as raw:
        for headers in ({}, {"Authorization": "Bearer tap_not_a_token"}):
            response = await raw.post("/mcp", json=hello, headers={**headers, "Accept": "application/json"})
            assert response.status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own transport error for a 401
        async with http_client(service, "tap_not_a_token") as client:
            await client.list_tools()
