"""The sandbox agent on a real engine: commands and files go through it, not `docker exec`; a
container without one falls back to the engine; and whatever code inside does to its agent —
kill it, stall it, flood or forge its stream — breaks only its own task, while the manager stays
responsive, other tasks are untouched and the container is still removed."""

from __future__ import annotations

import asyncio
import io
import logging
import resource
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import docker
import pytest

from runtime import labels
from runtime.backends.docker import agents
from runtime.backends.docker.agent_channel import AgentLost
from runtime.config import RuntimeConfig
from runtime.errors import SandboxFailure, SandboxGone
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager, Sandbox
from tests.integration.conftest import AGENT

pytestmark = pytest.mark.integration


def _attrs(client: docker.DockerClient, box: Sandbox) -> dict[str, object]:
    return dict(client.api.inspect_container(box.info.container_id))


@pytest.fixture
async def two(manager: ContainerManager, unique: str) -> AsyncIterator[tuple[Sandbox, Sandbox]]:
    """Two tasks of different projects: what one does to its agent must not reach the other."""
    async with manager.task(f"a{unique}", f"pa{unique}", "python") as a, \
            manager.task(f"b{unique}", f"pb{unique}", "python") as b:
        yield a, b


async def test_commands_and_files_go_through_the_agent_and_no_engine_exec(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    for i in range(20):
        assert (await sandbox.exec(f"echo {i}")).stdout == f"{i}\n"
    await sandbox.write_files({"src/a.txt": "x" * 100, "src/b/c.txt": "y"})
    assert await sandbox.read_file("src/a.txt") == b"x" * 100
    listed = {e.name: e for e in await sandbox.list_files("src")}
    assert {(n, e.type) for n, e in listed.items()} == {("a.txt", "file"), ("b", "dir")}
    assert listed["a.txt"].size == 100 and listed["a.txt"].mtime > time.time() - 600
    attrs = _attrs(docker_client, sandbox)
    assert not attrs["ExecIDs"], "every command and file went through the agent, none through docker exec"
    config = attrs["Config"]
    assert isinstance(config, dict) and " ".join(config["Cmd"]) == AGENT and config["OpenStdin"] is True


async def test_the_container_adds_no_capability_mount_or_port(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    attrs = _attrs(docker_client, sandbox)
    host, config = attrs["HostConfig"], attrs["Config"]
    assert isinstance(host, dict) and isinstance(config, dict)
    assert host["CapAdd"] is None and host["CapDrop"] == ["ALL"] and not host["PortBindings"]
    assert not config.get("ExposedPorts") and host["Privileged"] is False
    mounts = attrs["Mounts"]
    assert isinstance(mounts, list) and [m["Destination"] for m in mounts] == ["/workspace"]


async def test_a_hundred_concurrent_commands_on_one_task_all_complete(sandbox: Sandbox) -> None:
    t0 = time.monotonic()
    results = await asyncio.gather(*(sandbox.exec(f"echo {i}") for i in range(100)))
    took = time.monotonic() - t0
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(100)] and all(r.ok for r in results)
    print(f"100 concurrent commands on one task: {took:.2f}s, {100 / took:.0f}/s")


async def test_killing_everything_inside_ends_the_sandbox_with_one_clear_error(
    manager: ContainerManager, two: tuple[Sandbox, Sandbox]
) -> None:
    victim, bystander = two
    t0 = time.monotonic()
    ended = await victim.exec("kill -9 -1; sleep 30", timeout=20)
    assert time.monotonic() - t0 < 10 and ended.exit_code is not None  # the container's end, at once
    for call in (victim.exec("true"), victim.read_file("x"), victim.write_files({"x": "1"}), victim.list_files()):
        with pytest.raises(SandboxGone, match="exited with status"):
            await call
    assert (await bystander.exec("echo fine")).stdout == "fine\n"
    assert await manager.destroy_container(victim.task_id) is True  # and it is still removed


async def test_a_stalled_agent_costs_its_own_task_a_timeout_and_then_the_engine_serves_it(
    manager: ContainerManager, two: tuple[Sandbox, Sandbox]
) -> None:
    victim, bystander = two
    stall = asyncio.ensure_future(victim.exec("kill -STOP $PPID; echo never", timeout=2))
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    assert (await bystander.exec("echo responsive")).stdout == "responsive\n"
    assert time.monotonic() - t0 < 2  # the manager and other tasks carry on meanwhile
    result = await stall
    assert result.timed_out and result.duration < 2 + 2 + 3
    after = await victim.exec("echo served by the engine")
    assert after.stdout == "served by the engine\n"


async def test_a_flood_of_garbage_and_forged_frames_keeps_the_manager_bounded(
    manager: ContainerManager, two: tuple[Sandbox, Sandbox]
) -> None:
    victim, bystander = two
    forge = (
        "import sys, json, struct, os\n"
        "out = os.open('/proc/1/fd/1', os.O_WRONLY)\n"
        "def frame(h, p=b''):\n"
        "    b = json.dumps(h).encode()\n"
        "    return struct.pack('>IH', len(b) + len(p), len(b)) + b + p\n"
        "for i in range(2000):\n"  # answers to nobody: dropped
        "    os.write(out, frame({'type': 'exit', 'id': 10**6 + i, 'code': 0}))\n"
        "for rid in range(1, 40):\n"  # 3 MiB of output for each id the channel may have given this command
        "    for _ in range(3):\n"
        "        os.write(out, frame({'type': 'out', 'id': rid, 'stream': 1}, b'z' * (1 << 20)))\n"
        "if sys.argv[1:] == ['break']:\n"  # then a frame that claims 1 GiB: malformed
        "    os.write(out, struct.pack('>IH', 1 << 30, 10) + b'x' * 100)\n"
    )
    await victim.write_files({"forge.py": forge})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forged = await victim.exec("python3 forge.py", timeout=60)
    # Well-formed frames pass as the task's own output: capped like any output, and only its own.
    assert forged.exit_code == 0 and forged.truncated and len(forged.stdout) <= 1 << 20
    with pytest.raises(SandboxFailure, match="stopped answering"):
        await victim.exec("python3 forge.py break", timeout=60)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, f"the manager grew by {grown_mib:.0f} MiB reading a hostile stream"
    assert (await bystander.exec("echo untouched")).stdout == "untouched\n"
    assert (await victim.exec("echo own task still served")).stdout == "own task still served\n"


async def test_the_health_check_asks_the_agent(sandbox: Sandbox, docker_client: docker.DockerClient) -> None:
    config = _attrs(docker_client, sandbox)["Config"]
    assert isinstance(config, dict)
    assert config["Healthcheck"]["Test"][-1] == "health"
    container = docker_client.containers.get(sandbox.info.container_id)
    healthy = container.exec_run(config["Healthcheck"]["Test"][1:], user="1000:1000")
    assert healthy.exit_code == 0
    await sandbox.exec("kill -STOP $PPID", timeout=1)  # stall the agent: it stops answering
    stalled = container.exec_run(config["Healthcheck"]["Test"][1:], user="1000:1000")
    assert stalled.exit_code == 1 and b"no answer" in stalled.output


def test_images_ship_no_setuid_or_setgid_program(docker_client: docker.DockerClient, python_image: Language) -> None:
    for image in ("theappapp-python:latest", "theappapp-node:latest", "theappapp-java:latest"):
        if not docker_client.images.list(name=image):
            continue
        found = docker_client.containers.run(
            image, ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"], remove=True, user="0:0",
            network_mode="none", entrypoint=[],
        )
        assert found.decode().split() == [], image


@pytest.fixture
def image_without_agent(docker_client: docker.DockerClient, python_image: Language) -> Iterator[str]:
    """theappapp-python under another tag, but without its agent label: a custom image."""
    tag = f"noagent-{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM theappapp-python:latest\nLABEL {labels.IMAGE_AGENT}=""\n'
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"theappapp-python:{tag}", rm=True)
    yield tag
    docker_client.images.remove(f"theappapp-python:{tag}", force=True)


async def test_a_container_without_the_agent_is_served_by_the_engine_and_says_so(
    runtime_config: RuntimeConfig, image_without_agent: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ContainerManager(runtime_config.replace(image_tag=image_without_agent, pool_enabled=False))
    await manager.startup()
    try:
        with caplog.at_level(logging.WARNING):
            async with manager.task(f"t{unique}", f"p{unique}", "python") as box:
                result = await box.exec("cat /proc/1/cmdline | tr '\\0' ' '")
                assert result.exit_code == 0 and "sleep infinity" in result.stdout
                await box.write_files({"d/f.txt": "via tar"})
                assert await box.read_file("d/f.txt") == b"via tar"
                assert [(e.name, e.type) for e in await box.list_files("d")] == [("f.txt", "file")]
                timed = await box.exec("sleep 30", timeout=1)
                assert timed.timed_out
        assert any("no sandbox agent" in r.getMessage() for r in caplog.records)
    finally:
        await manager.shutdown()


async def test_a_leased_container_whose_agent_does_not_answer_is_removed_but_a_task_is_kept(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spare starts on a lease only its manager can renew or lift, through the agent's channel. If the
    agent does not answer (here the greeting is made to fail), a task handed that spare would end itself
    15 s later: the spare fails instead (a cold start follows), with no word of a fall-back it will never
    use. A task's own container has no lease: it is kept and served by the engine."""

    async def no_answer(*args: object) -> None:
        raise AgentLost("no greeting (made to fail by the test)")

    monkeypatch.setattr(agents.AgentChannel, "open", no_answer)
    assert manager.pool is not None
    with caplog.at_level(logging.WARNING):
        with pytest.raises(SandboxFailure, match="did not answer; its container would end itself within 15 s"):
            await manager.pool.maker.make((f"p{unique}", "python"), lambda cid: None)
        assert not any("no sandbox agent" in r.getMessage() for r in caplog.records)
    mine = {"label": [f"{labels.PROJECT}=p{unique}", f"{labels.POOL}"]}
    assert docker_client.api.containers(all=True, filters=mine) == []  # removed, not left to its lease
    with caplog.at_level(logging.WARNING):
        async with manager.task(f"t{unique}", f"p{unique}", "python") as box:
            assert (await box.exec("echo served")).stdout == "served\n"
        assert any("no sandbox agent" in r.getMessage() for r in caplog.records)
