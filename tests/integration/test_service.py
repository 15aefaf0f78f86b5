"""The HTTP API of `theappapp-sandbox serve`, driven with httpx2 against a real server process and engine.

Each rule of the service's scope is tried as an attack: no or a wrong token, another token's task,
a project outside the token, paths that climb out of /workspace, bodies over the limit (declared
and chunked), a flood of creates over the task limit, a timeout over the maximum, a slow client.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx2
import pytest

from runtime.registry import Language
from tests.integration.serving import Service, add_token, containers_of, serving

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    alice = add_token(path, "alice", "--projects", "alice-*", "--max-tasks", "3", "--max-timeout", "20",
                      "--max-body", str(MiB))
    bob = add_token(path, "bob", "--projects", "bob-*")
    return path, alice, bob


@pytest.fixture(scope="module")
def service(docker_client: docker.DockerClient, tokens: tuple[Path, str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving(tmp_path_factory.mktemp("serve"), "--tokens", str(tokens[0])) as running:
        yield running


@pytest.fixture
async def alice(service: Service, tokens: tuple[Path, str, str], python_image: Language
                ) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {tokens[1]}"},
                                 timeout=60) as client:
        yield client
        for task in (await client.get("/v1/tasks")).json():
            await client.delete(f"/v1/tasks/{task['task_id']}")


@pytest.fixture
async def bob(service: Service, tokens: tuple[Path, str, str]) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {tokens[2]}"},
                                 timeout=60) as client:
        yield client


async def create(client: httpx2.AsyncClient, task_id: str, project_id: str) -> httpx2.Response:
    return await client.post("/v1/tasks", json={"task_id": task_id, "project_id": project_id, "language": "python"})


async def test_openapi_names_every_endpoint(service: Service) -> None:
    async with httpx2.AsyncClient(base_url=service.url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/exec", "/v1/tasks/{task_id}/run",
            "/v1/tasks/{task_id}/files/{path}", "/v1/tasks/{task_id}/files", "/v1/run", "/healthz",
            "/metrics"} <= set(paths)
    assert set(paths["/v1/tasks"]) == {"get", "post"} and "delete" in paths["/v1/tasks/{task_id}"]


async def test_a_task_from_create_to_delete(alice: httpx2.AsyncClient, unique: str,
                                            docker_client: docker.DockerClient) -> None:
    task = f"t-{unique}"
    created = await create(alice, task, f"alice-{unique}")
    assert created.status_code == 201, created.text
    assert created.json()["task_id"] == task and created.json()["language"] == "python"
    assert [t["task_id"] for t in (await alice.get("/v1/tasks")).json()] == [task]

    ran = (await alice.post(f"/v1/tasks/{task}/exec",
                            json={"command": "read x; echo $x-$GREETING; echo e >&2; exit 3", "stdin": "hi\n",
                                  "env": {"GREETING": "hello"}})).json()
    assert (ran["exit_code"], ran["stdout"], ran["stderr"], ran["timed_out"]) == (3, "hi-hello\n", "e\n", False)

    put = await alice.put(f"/v1/tasks/{task}/files/src/data.bin", content=bytes(range(256)))
    assert put.status_code == 201 and put.json() == {"path": "src/data.bin", "size": 256}
    assert (await alice.get(f"/v1/tasks/{task}/files/src/data.bin")).content == bytes(range(256))
    listing = (await alice.get(f"/v1/tasks/{task}/files", params={"path": "src"})).json()
    assert [(e["name"], e["type"], e["size"]) for e in listing] == [("data.bin", "file", 256)]

    assert (await alice.delete(f"/v1/tasks/{task}")).status_code == 204
    assert (await alice.get(f"/v1/tasks/{task}")).status_code == 404
    assert (await alice.delete(f"/v1/tasks/{task}")).status_code == 404
    deadline = time.monotonic() + 30
    while containers_of(docker_client, [task]) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert containers_of(docker_client, [task]) == []


async def test_exec_streams_output_as_server_sent_events(alice: httpx2.AsyncClient, unique: str) -> None:
    task = f"s-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    events: list[tuple[str, float]] = []
    t0 = time.monotonic()
    body = {"command": "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo done >&2"}
    async with alice.stream("POST", f"/v1/tasks/{task}/exec", json=body,
                            headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append((line[7:], time.monotonic() - t0))
    kinds = [kind for kind, _ in events]
    assert kinds.count("stdout") == 3 and kinds[-2:] == ["stderr", "result"]
    first_out = next(at for kind, at in events if kind == "stdout")
    assert first_out < events[-1][1] - 0.5  # the first line came while the command still ran


async def test_one_shot_run_returns_the_validators_findings(alice: httpx2.AsyncClient) -> None:
    ran = await alice.post("/v1/run", json={"language": "python", "code": "print(eval('6 * 7'))\n"})
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["stdout"] == "42\n" and body["exit_code"] == 0 and body["filename"] == "main.py"
    assert [f["rule_id"] for f in body["findings"]] == ["pattern.python.eval-exec"]  # found, not blocking
    assert (await alice.get("/v1/tasks")).json() == []  # its task is gone


async def test_no_token_or_a_wrong_one_is_401(service: Service, tokens: tuple[Path, str, str]) -> None:
    async with httpx2.AsyncClient(base_url=service.url) as client:
        for headers in ({}, {"Authorization": "Bearer tap_wrong"}, {"Authorization": tokens[1]},
                        {"Authorization": f"Basic {tokens[1]}"}):
            for method, url in (("GET", "/v1/tasks"), ("POST", "/v1/run"), ("DELETE", "/v1/tasks/x")):
                response = await client.request(method, url, headers=headers)
                assert response.status_code == 401, (headers, url)
                assert response.headers["www-authenticate"] == "Bearer"
                assert tokens[1] not in response.text


async def test_another_tokens_task_does_not_exist_for_you(alice: httpx2.AsyncClient, bob: httpx2.AsyncClient,
                                                          unique: str) -> None:
    task = f"a-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    assert (await bob.get("/v1/tasks")).json() == []
    attempts = [
        await bob.get(f"/v1/tasks/{task}"),
        await bob.post(f"/v1/tasks/{task}/exec", json={"command": "cat /etc/hostname"}),
        await bob.put(f"/v1/tasks/{task}/files/x", content=b"x"),
        await bob.get(f"/v1/tasks/{task}/files/x"),
        await bob.get(f"/v1/tasks/{task}/files"),
        await bob.post(f"/v1/tasks/{task}/run", json={"code": "print(1)"}),
        await bob.delete(f"/v1/tasks/{task}"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert all(r.json()["error"] == "TaskNotFound" for r in attempts)
    # bob cannot take the id either (it is in use), and alice's task is untouched
    assert (await create(bob, task, f"bob-{unique}")).status_code == 409
    assert (await alice.get(f"/v1/tasks/{task}")).status_code == 200


async def test_a_project_outside_the_token_is_403(alice: httpx2.AsyncClient, unique: str) -> None:
    for project in (f"bob-{unique}", f"x-alice-{unique}", "alice"):
        response = await create(alice, f"p-{unique}", project)
        assert response.status_code == 403 and response.json()["error"] == "AccessDenied", project
    denied = await alice.post("/v1/run", json={"language": "python", "code": "print(1)", "project_id": "bob-x"})
    assert denied.status_code == 403


async def test_ids_and_paths_are_checked_as_the_library_checks_them(alice: httpx2.AsyncClient, unique: str) -> None:
    assert (await create(alice, "../x", f"alice-{unique}")).status_code == 422
    assert (await create(alice, f"t-{unique}", "alice-$(id)")).status_code in (403, 422)
    bad_lang = await alice.post("/v1/tasks", json={"task_id": f"l-{unique}", "project_id": f"alice-{unique}",
                                                   "language": "cobol"})
    assert bad_lang.status_code == 422 and bad_lang.json()["error"] == "UnknownLanguage"
    task = f"f-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    await alice.post(f"/v1/tasks/{task}/exec", json={"command": "ln -s /etc out; ln -s /etc/passwd pw"})
    for path in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E/%2E%2E/etc/passwd", "a/..%2F..%2F..%2Fetc", "out/passwd", "pw",
                 "%00x"):
        for response in (await alice.get(f"/v1/tasks/{task}/files/{path}"),
                         await alice.put(f"/v1/tasks/{task}/files/{path}", content=b"owned")):
            assert response.status_code in (404, 422), (path, response.status_code, response.text)
            assert "root:" not in response.text
    listing = await alice.get(f"/v1/tasks/{task}/files", params={"path": "../.."})
    assert listing.status_code == 422 and listing.json()["error"] == "InvalidPath"
    host_file = (await alice.post(f"/v1/tasks/{task}/exec", json={"command": "cat /etc/hostname"})).json()
    assert host_file["exit_code"] == 0  # the sandbox's own files, nothing written outside /workspace
    bad_exec = await alice.post(f"/v1/tasks/{task}/exec", json={"command": "true", "workdir": "/etc"})
    assert bad_exec.status_code == 422


async def test_bodies_over_the_limit_are_413_declared_or_chunked(alice: httpx2.AsyncClient, unique: str) -> None:
    task = f"b-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    declared = await alice.put(f"/v1/tasks/{task}/files/big", content=b"x" * (MiB + 1))
    assert declared.status_code == 413 and declared.json()["error"] == "BodyTooLarge"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):  # 80 MiB, over the service-wide 64 MiB cap too
            yield b"y" * MiB

    chunked = await alice.put(f"/v1/tasks/{task}/files/big", content=chunks())
    assert chunked.status_code == 413
    json_big = await alice.post(f"/v1/tasks/{task}/exec", json={"command": "true", "stdin": "z" * (MiB + 10)})
    assert json_big.status_code == 413
    assert (await alice.get(f"/v1/tasks/{task}/files")).json() == []  # nothing was written
    fits = await alice.put(f"/v1/tasks/{task}/files/ok", content=b"x" * (MiB - 1))
    assert fits.status_code == 201


async def test_a_flood_of_creates_over_the_limit_gets_429(alice: httpx2.AsyncClient, unique: str,
                                                          docker_client: docker.DockerClient) -> None:
    ids = [f"flood{i}-{unique}" for i in range(8)]
    responses = await asyncio.gather(*(create(alice, t, f"alice-{unique}") for t in ids))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [429] * 5, codes  # max-tasks 3, counted while the creates are under way
    made = [t for t, r in zip(ids, responses, strict=True) if r.status_code == 201]
    assert sorted(containers_of(docker_client, ids)) == sorted(f"theappapp-alice-{unique}-{t}" for t in made)
    await alice.delete(f"/v1/tasks/{made[0]}")
    assert (await create(alice, f"again-{unique}", f"alice-{unique}")).status_code == 201  # room again


async def test_timeouts_over_the_tokens_maximum_are_refused(alice: httpx2.AsyncClient, unique: str) -> None:
    task = f"to-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    over = await alice.post(f"/v1/tasks/{task}/exec", json={"command": "true", "timeout": 3600})
    assert over.status_code == 429 and "20" in over.json()["detail"]
    killed = (await alice.post(f"/v1/tasks/{task}/exec", json={"command": "sleep 30", "timeout": 1})).json()
    assert killed["timed_out"] is True and killed["duration"] < 10
    negative = await alice.post(f"/v1/tasks/{task}/exec", json={"command": "true", "timeout": -1})
    assert negative.status_code == 422


async def test_slow_clients_do_not_hold_up_others(service: Service, alice: httpx2.AsyncClient) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(20):  # each sends half a request, then nothing
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"lang")
        slow.append(sock)
    try:
        t0 = time.monotonic()
        response = await alice.get("/v1/tasks")
        assert response.status_code == 200 and time.monotonic() - t0 < 1.0
    finally:
        for sock in slow:
            sock.close()


async def test_health_and_metrics(service: Service, alice: httpx2.AsyncClient, unique: str) -> None:
    async with httpx2.AsyncClient(base_url=service.url) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        task = f"m-{unique}"
        assert (await create(alice, task, f"alice-{unique}")).status_code == 201
        await alice.post(f"/v1/tasks/{task}/exec", json={"command": "true"})
        text = (await client.get("/metrics")).text
    assert "theappapp_sandbox_service_tasks 1" in text
    assert 'theappapp_sandbox_executions_total{language="python"' in text


async def test_sessions_keep_state_between_calls(alice: httpx2.AsyncClient, bob: httpx2.AsyncClient,
                                                 unique: str) -> None:
    task = f"ss-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    opened = await alice.post(f"/v1/tasks/{task}/sessions", json={"kind": "python"})
    assert opened.status_code == 201, opened.text
    sid = opened.json()["session_id"]
    first = (await alice.post(f"/v1/tasks/{task}/sessions/{sid}/run", json={"code": "x = 40\nx + 1"})).json()
    assert first["value"] == "41" and first["error"] is None
    second = (await alice.post(f"/v1/tasks/{task}/sessions/{sid}/run", json={"code": "x + 2"})).json()
    assert second["value"] == "42"
    failed = (await alice.post(f"/v1/tasks/{task}/sessions/{sid}/run", json={"code": "1/0"})).json()
    assert failed["error"]["name"] == "ZeroDivisionError"

    shell = (await alice.post(f"/v1/tasks/{task}/sessions", json={"kind": "shell"})).json()["session_id"]
    await alice.post(f"/v1/tasks/{task}/sessions/{shell}/run", json={"code": "cd /tmp && export K=v"})
    ran = (await alice.post(f"/v1/tasks/{task}/sessions/{shell}/run", json={"code": "echo $PWD $K"})).json()
    assert (ran["stdout"], ran["exit_code"]) == ("/tmp v\n", 0)
    listed = {s["session_id"] for s in (await alice.get(f"/v1/tasks/{task}/sessions")).json()}
    assert listed == {sid, shell}

    assert (await bob.post(f"/v1/tasks/{task}/sessions/{sid}/run", json={"code": "x"})).status_code == 404
    assert (await alice.post(f"/v1/tasks/{task}/sessions", json={"kind": "ruby"})).status_code == 422
    assert (await alice.delete(f"/v1/tasks/{task}/sessions/{sid}")).status_code == 204
    gone = await alice.post(f"/v1/tasks/{task}/sessions/{sid}/run", json={"code": "x"})
    assert gone.status_code == 409 and gone.json()["error"] == "SessionClosed"


async def test_background_processes(alice: httpx2.AsyncClient, unique: str) -> None:
    task = f"bp-{unique}"
    assert (await create(alice, task, f"alice-{unique}")).status_code == 201
    started = await alice.post(f"/v1/tasks/{task}/processes",
                               json={"command": "echo ready; while read line; do echo got:$line; done", "name": "echo"})
    assert started.status_code == 201, started.text
    pid = started.json()["pid"]
    assert started.json()["running"] is True
    assert (await alice.post(f"/v1/tasks/{task}/processes/{pid}/stdin", content=b"one\n")).status_code == 204
    deadline = time.monotonic() + 10
    while "got:one" not in (out := (await alice.get(f"/v1/tasks/{task}/processes/{pid}/output")).json())["stdout"]:
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.1)
    assert out["stdout"] == "ready\ngot:one\n"
    assert [p["pid"] for p in (await alice.get(f"/v1/tasks/{task}/processes")).json()] == [pid]
    assert (await alice.delete(f"/v1/tasks/{task}/processes/{pid}", params={"signal": "KILL"})).status_code == 204
    ended = (await alice.post(f"/v1/tasks/{task}/processes/{pid}/wait", params={"timeout": 10})).json()
    assert ended["running"] is False and ended["exit_code"] == 137
    assert (await alice.get(f"/v1/tasks/{task}/processes/99999")).status_code == 422
