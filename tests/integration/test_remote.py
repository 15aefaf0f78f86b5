"""`RemoteContainerManager` against a real `serve`: the manager's API and exceptions over HTTP; and a
`serve` that loses its engine answers 503, then recovers when the engine is back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx2
import pytest

from runtime.errors import (
    AccessDenied,
    EngineUnavailable,
    FileMissing,
    InvalidPath,
    LimitExceeded,
    TaskExists,
    TaskNotFound,
    UnknownLanguage,
    ValidationFailed,
)
from runtime.registry import Language
from runtime.remote import RemoteContainerManager
from runtime.sandbox.execution import ExecResult
from tests.integration.serving import Service, add_token, service_env, serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("remote-tokens") / "tokens.json"
    return path, add_token(path, "orchestrator", "--projects", "rp-*", "--max-tasks", "4")


@pytest.fixture(scope="module")
def service(docker_client: docker.DockerClient, tokens: tuple[Path, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("remote-serve"), "--tokens", str(tokens[0]), "--no-mcp") as running:
        yield running


@pytest.fixture
async def remote(service: Service, tokens: tuple[Path, str], python_image: Language
                 ) -> AsyncIterator[RemoteContainerManager]:
    async with RemoteContainerManager(service.url, tokens[1]) as manager:
        yield manager
        for info in await manager.list_tasks():
            await manager.destroy_container(info.task_id)


async def test_the_managers_api_over_http(remote: RemoteContainerManager, unique: str) -> None:
    info = await remote.create_container(f"r-{unique}", f"rp-{unique}", "py")
    assert (info.task_id, info.project_id, info.language) == (f"r-{unique}", f"rp-{unique}", "python")
    result = await remote.exec_command(info.task_id, "cat; echo $X >&2; exit 4", stdin="in", env={"X": "y"})
    assert isinstance(result, ExecResult)
    assert (result.exit_code, result.stdout, result.stderr, result.ok) == (4, "in", "y\n", False)

    stream = remote.exec_stream(info.task_id, "echo a; sleep 0.3; echo b >&2")
    chunks = [(c.stream, c.text) async for c in stream]
    assert chunks == [("stdout", "a\n"), ("stderr", "b\n")] and stream.result is not None
    assert stream.result.exit_code == 0

    assert await remote.write_files(info.task_id, {"pkg/a.txt": "text", "pkg/b.bin": b"\x00\xff"}) == \
        ["pkg/a.txt", "pkg/b.bin"]
    assert await remote.read_file(info.task_id, "pkg/b.bin") == b"\x00\xff"
    assert sorted(e.name for e in await remote.list_files(info.task_id, "pkg")) == ["a.txt", "b.bin"]

    ran = await remote.run_code(info.task_id, "print(open('pkg/a.txt').read())")
    assert ran.stdout == "text\n" and ran.filename == "main.py"
    once = await remote.run("python", "print(eval('1+1'))")
    assert once.stdout == "2\n" and [f.rule_id for f in once.findings] == ["pattern.python.eval-exec"]

    assert await remote.destroy_container(info.task_id) is True
    assert await remote.destroy_container(info.task_id) is False


async def test_errors_come_back_as_the_same_exception_classes(remote: RemoteContainerManager, unique: str) -> None:
    with pytest.raises(TaskNotFound):
        await remote.exec_command("nope", "true")
    with pytest.raises(AccessDenied):
        await remote.create_container(f"x-{unique}", "elsewhere", "python")
    with pytest.raises(UnknownLanguage):
        await remote.create_container(f"x-{unique}", f"rp-{unique}", "cobol")
    info = await remote.create_container(f"e-{unique}", f"rp-{unique}", "python")
    with pytest.raises(TaskExists):
        await remote.create_container(info.task_id, f"rp-{unique}", "python")
    with pytest.raises(InvalidPath):
        await remote.read_file(info.task_id, "../../etc/passwd")
    with pytest.raises(FileMissing):
        await remote.read_file(info.task_id, "missing.txt")
    with pytest.raises(ValidationFailed) as refused:
        await remote.run_code(info.task_id, "def broken(:\n", strict=True)
    assert refused.value.findings and refused.value.findings[0].severity == "error"
    with pytest.raises(TaskNotFound):
        stream = remote.exec_stream("nope", "true")
        await stream.collect()
    ids = [f"lim{i}-{unique}" for i in range(4)]
    with pytest.raises(LimitExceeded):
        for task_id in ids:  # one live already: the fourth more is the fifth
            await remote.create_container(task_id, f"rp-{unique}", "python")


FORWARDER = """
import asyncio, sys
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data); await w.drain()
    finally:
        w.close()
async def serve(r, w):
    ur, uw = await asyncio.open_unix_connection("/var/run/docker.sock")
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    server = await asyncio.start_unix_server(serve, sys.argv[1])
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def start_forwarder(sock: Path) -> subprocess.Popen[str]:
    """The engine's socket, forwarded through a path this test can take away and give back."""
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", FORWARDER, str(sock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_a_serve_that_loses_its_engine_answers_503_and_recovers(
        docker_client: docker.DockerClient, python_image: Language, tmp_path: Path, unique: str) -> None:
    sock = tmp_path / "engine.sock"
    forwarder = start_forwarder(sock)
    env = service_env(DOCKER_HOST=f"unix://{sock}")
    try:
        with serving(tmp_path, "--no-mcp", env=env) as service:
            async with httpx2.AsyncClient(base_url=service.url, timeout=60) as client:
                assert (await client.get("/healthz")).status_code == 200
                body = {"task_id": f"a-{unique}", "project_id": f"lost-{unique}", "language": "python"}
                assert (await client.post("/v1/tasks", json=body)).status_code == 201

                forwarder.kill()
                forwarder.wait()
                sock.unlink()
                health = await client.get("/healthz")
                assert health.status_code == 503 and health.json()["error"] == "EngineUnavailable"
                lost = await client.post("/v1/tasks", json={**body, "task_id": f"b-{unique}"})
                assert lost.status_code == 503, lost.text
                assert lost.json()["error"] == "EngineUnavailable"

                forwarder = start_forwarder(sock)
                deadline = time.monotonic() + 30
                while (await client.get("/healthz")).status_code != 200 and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                again = await client.post("/v1/tasks", json={**body, "task_id": f"c-{unique}"})
                assert again.status_code == 201, again.text
                ran = await client.post(f"/v1/tasks/c-{unique}/exec", json={"command": "echo back"})
                assert ran.json()["stdout"] == "back\n"
                for task in (f"a-{unique}", f"c-{unique}"):
                    await client.delete(f"/v1/tasks/{task}")
    finally:
        forwarder.kill()
        forwarder.wait()
    with pytest.raises(EngineUnavailable):  # the remote client says the same of a service that is gone
        async with RemoteContainerManager(service.url) as remote:
            await remote.list_tasks()
