"""Kept network namespaces (runtime/backends/docker/netns.py) on a real engine: a project's later
sandboxes join one, one at a time, and the isolation is what it was, tried as attacks."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import docker
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager
from tests.integration.conftest import NETWORK, RUNTIME_IDS, RUNTIMES, runtime_or_skip
from tests.integration.test_network_policy import Listener

pytestmark = pytest.mark.integration

ATTEMPTS = 8  # sequential tasks to wait through for the first holder (made in the background)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
async def no_pool(request: pytest.FixtureRequest, docker_client: docker.DockerClient, python_image: Language
                  ) -> AsyncIterator[ContainerManager]:
    """A manager without a warm pool: every task's container is made for it, so what it joins is clear
    (under the engine's default OCI runtime, and under crun)."""
    runtime = runtime_or_skip(docker_client, request.param)
    manager = ContainerManager(RuntimeConfig.load(network_name=NETWORK, pool_enabled=False, runtime=runtime))
    await manager.startup()
    yield manager
    await manager.shutdown()


async def _one_task(manager: ContainerManager, client: docker.DockerClient, task: str, project: str,
                    command: str = "true") -> tuple[str, str | None, str]:
    """(its network namespace, the holder it joined or None, the command's output)."""
    info = await manager.create_container(task, project, "python")
    try:
        values = client.api.inspect_container(info.container_id)["Config"]["Labels"]
        result = await manager.exec_command(task, f"readlink /proc/self/ns/net; {command}")
        namespace, _, output = result.stdout.partition("\n")
        assert info.network == manager.config.network.name  # the network it is on, not its holder's id
        return namespace, values.get(labels.NETNS), output
    finally:
        await manager.destroy_container(task)


async def _until_joined(manager: ContainerManager, client: docker.DockerClient, project: str, unique: str,
                        command: str = "true") -> tuple[str, str, str]:
    for attempt in range(ATTEMPTS):
        namespace, holder, output = await _one_task(manager, client, f"t{unique}-{attempt}", project, command)
        if holder is not None:
            return namespace, holder, output
        await asyncio.sleep(0.5)
    raise AssertionError(f"none of {ATTEMPTS} sequential tasks of project {project} joined a kept namespace")


async def test_a_projects_later_tasks_join_its_kept_namespace_and_other_projects_never_do(
    no_pool: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    seen: dict[str, set[str]] = {"a": set(), "b": set()}
    for project in ("a", "b"):
        namespace, holder, _ = await _until_joined(no_pool, docker_client, f"p{unique}{project}", unique + project)
        seen[project].add(namespace)
        holder_labels = docker_client.api.inspect_container(holder)["Config"]["Labels"]
        assert holder_labels[labels.PROJECT] == f"p{unique}{project}" and holder_labels[labels.ROLE] == "netns"
    for round_ in range(3):  # alternating: each project's tasks come back to its own namespaces only
        for project in ("a", "b"):
            namespace, _, _ = await _one_task(no_pool, docker_client, f"r{unique}{round_}", f"p{unique}{project}")
            seen[project].add(namespace)
    assert seen["a"].isdisjoint(seen["b"]), seen


async def test_concurrent_tasks_of_one_project_never_share_a_namespace(
    no_pool: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    project = f"p{unique}"
    await _until_joined(no_pool, docker_client, project, unique)
    await asyncio.sleep(1.0)  # its removal done in the background, the holder is free again
    tasks = [f"c{unique}-{i}" for i in range(3)]
    infos = await asyncio.gather(*(no_pool.create_container(t, project, "python") for t in tasks))
    try:
        results = await asyncio.gather(*(no_pool.exec_command(t, "readlink /proc/self/ns/net") for t in tasks))
        namespaces = [r.stdout.strip() for r in results]
        assert len(set(namespaces)) == len(tasks), namespaces
        holders = [docker_client.api.inspect_container(i.container_id)["Config"]["Labels"].get(labels.NETNS)
                   for i in infos]
        assert any(holders), "none of them joined the kept namespace"
        assert len({h for h in holders if h}) == len([h for h in holders if h])  # one sandbox per holder
    finally:
        await asyncio.gather(*(no_pool.destroy_container(t) for t in tasks))


async def test_a_joined_sandboxs_health_check_asks_its_own_agent_not_its_holders(
    no_pool: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    """The health check's socket is abstract, so it belongs to the network namespace: the holder's agent,
    there first, used to answer for every sandbox that joined it, a stalled one included."""
    project, task = f"p{unique}", f"h{unique}"
    await _until_joined(no_pool, docker_client, project, unique)
    await asyncio.sleep(1.0)  # its removal done in the background, the holder is free again
    info = await no_pool.create_container(task, project, "python")
    try:
        config = docker_client.api.inspect_container(info.container_id)["Config"]
        assert config["Labels"].get(labels.NETNS), "the sandbox did not join the kept namespace"
        check, container = config["Healthcheck"]["Test"][1:], docker_client.containers.get(info.container_id)
        assert container.exec_run(check, user="1000:1000").exit_code == 0
        await no_pool.exec_command(task, "kill -STOP $PPID", timeout=1)  # its own agent stops answering
        stalled = container.exec_run(check, user="1000:1000")
        assert stalled.exit_code == 1 and b"no answer" in stalled.output, stalled
    finally:
        await no_pool.destroy_container(task)


async def test_what_a_task_leaves_listening_is_gone_for_the_next_task_in_its_namespace(
    no_pool: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    project = f"p{unique}"
    port = 18765
    leave_listener = (f"setsid nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & "
                      f"for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo listening "
                      "&& break; sleep 0.1; done")
    namespace, holder, output = await _until_joined(no_pool, docker_client, project, unique, leave_listener)
    assert output.strip() == "listening"
    probe = f"(echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo reached || echo refused"
    for attempt in range(ATTEMPTS):  # the project may have several holders: find the same one again
        again, next_holder, reached = await _one_task(no_pool, docker_client, f"n{unique}-{attempt}", project, probe)
        if next_holder == holder:
            assert again == namespace
            assert reached.strip() == "refused"  # the listener died with its task's container
            return
    pytest.fail("no later task joined the same holder again")


def _host_ipv4_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    found = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in found if not a.startswith("127.")]


async def test_a_task_in_a_kept_namespace_still_cannot_reach_the_host(
    no_pool: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    listener = Listener("0.0.0.0").start()
    try:
        attempts = " ".join(f"(timeout 2 bash -c 'echo > /dev/tcp/{a}/{listener.port}' 2>/dev/null "
                            f"&& echo '{a} open' || echo '{a} closed') &" for a in _host_ipv4_addresses())
        _, _, output = await _until_joined(no_pool, docker_client, f"p{unique}", unique, f"{attempts} wait")
        outcome = dict(line.split() for line in output.splitlines())
        assert outcome and set(outcome.values()) == {"closed"}, outcome
        assert listener.peers == []
    finally:
        listener.close()
