"""Container lifecycle against the real engine: naming, volumes, persistence, isolation, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import docker
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import (
    EngineUnavailable,
    ImageMissing,
    InvalidIdentifier,
    TaskExists,
    TaskNotFound,
    UnknownLanguage,
)
from runtime.registry import Language
from runtime.sandbox.events import ExecEvent, LifecycleEvent
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.pool import SPARE_PREFIX

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.execs: list[ExecEvent] = []
        self.lifecycle: list[LifecycleEvent] = []

    def on_exec(self, event: ExecEvent) -> None:
        self.execs.append(event)

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        self.lifecycle.append(event)


def _ours(client: docker.DockerClient, installation_id: str, **extra: str) -> list[Any]:
    filters = [f"{labels.INSTALLATION}={installation_id}"] + [f"{k}={v}" for k, v in extra.items()]
    # Idle warm-pool spares and network namespace holders wait for the project's next task by design
    # (tests/integration/test_pool.py and test_netns_reuse.py cover them).
    found = client.containers.list(all=True, filters={"label": filters})
    return [c for c in found if not c.name.startswith(SPARE_PREFIX) and labels.ROLE not in c.labels]


async def test_seed_api_creates_named_labelled_container_with_project_volume(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, installation_id: str
) -> None:
    info = await manager.create_container(task_id=f"task-{unique}", project_id=f"proj-{unique}", language="py")
    assert info.container_name == f"theappapp-proj-{unique}-task-{unique}"
    assert info.volume_name == f"theappapp-project-proj-{unique}"
    assert info.language == "python"  # alias resolved by the registry
    attrs = docker_client.api.inspect_container(info.container_id)
    got = attrs["Config"]["Labels"]
    assert got[labels.MANAGED] == "true"
    assert got[labels.TASK] == f"task-{unique}" and got[labels.PROJECT] == f"proj-{unique}"
    assert got[labels.LANGUAGE] == "python" and got[labels.INSTALLATION] == installation_id
    assert got[labels.OWNER] == manager.owner.manager_id and got[labels.OWNER_PID].isdigit()
    assert int(got[labels.EXPIRES_AT]) > int(got[labels.CREATED_AT])
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/workspace"]["Name"] == info.volume_name
    result = await manager.exec_command(task_id=f"task-{unique}", command="pwd; python3 -c 'print(6*7)'")
    assert (result.exit_code, result.stdout) == (0, "/workspace\n42\n")
    assert await manager.destroy_container(task_id=f"task-{unique}") is True
    await manager.settle()  # destroy returns once detached; removal finishes in the background
    assert _ours(docker_client, installation_id, **{labels.TASK: f"task-{unique}"}) == []
    volume = docker_client.volumes.get(info.volume_name)  # the volume outlives the container
    assert volume.attrs["Labels"][labels.PROJECT] == f"proj-{unique}"  # made by the mount, labelled as ours
    assert volume.attrs["Labels"][labels.INSTALLATION] == installation_id


async def test_files_persist_across_tasks_of_one_project(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"a{unique}", f"p{unique}", "python") as sandbox:
        await sandbox.write_files({"notes/state.txt": "kept"})
        await sandbox.exec("echo more >> notes/state.txt")
    async with manager.task(f"b{unique}", f"p{unique}", "python") as sandbox:
        assert await sandbox.read_file("notes/state.txt") == b"keptmore\n"


async def test_projects_cannot_see_each_others_files(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"a{unique}", f"pa{unique}", "python") as a:
        await a.write_files({"secret.txt": "project A only"})
        async with manager.task(f"b{unique}", f"pb{unique}", "python") as b:
            result = await b.exec("ls -A /workspace; cat /workspace/secret.txt; find / -name secret.txt 2>/dev/null")
            assert "project A only" not in result.stdout
            assert "secret.txt" not in result.stdout


async def test_sixteen_concurrent_tasks_over_two_projects_leave_nothing_behind(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, installation_id: str
) -> None:
    async def one(i: int) -> str:
        project = f"c{i % 2}{unique}"
        async with manager.task(f"t{i}-{unique}", project, "python") as sandbox:
            await sandbox.write_files({f"out/{i}.txt": str(i)})
            result = await sandbox.exec(f"cat out/{i}.txt; echo; ls out | wc -l")
            assert result.exit_code == 0, result.stderr
            return result.stdout.splitlines()[0]

    outputs = await asyncio.gather(*(one(i) for i in range(16)))
    assert outputs == [str(i) for i in range(16)]
    await manager.settle()
    for p in (0, 1):
        leftovers = _ours(docker_client, installation_id, **{labels.PROJECT: f"c{p}{unique}"})
        assert leftovers == []
    assert manager.tasks == {}


async def test_second_create_of_a_task_raises_task_exists(manager: ContainerManager, unique: str) -> None:
    await manager.create_container(f"t{unique}", f"p{unique}", "python")
    with pytest.raises(TaskExists):
        await manager.create_container(f"t{unique}", f"p{unique}", "python")
    # Another manager (another process) trying the same task meets the engine's name check.
    other = ContainerManager(manager.config)
    await other.startup()
    try:
        with pytest.raises(TaskExists):
            await other.create_container(f"t{unique}", f"p{unique}", "python")
    finally:
        await other.shutdown()


async def test_ids_that_split_differently_around_a_dash_are_a_collision_not_a_hijack(
    manager: ContainerManager, unique: str
) -> None:
    await manager.create_container(f"b-c{unique}", f"a{unique}", "python")  # theappapp-a…-b-c…
    with pytest.raises(InvalidIdentifier, match="collide"):
        await manager.create_container(f"c{unique}", f"a{unique}-b", "python")  # would be theappapp-a…-b-c…
    assert f"c{unique}" not in manager.tasks


@pytest.mark.parametrize("bad", ["../x", "a b", "a;rm -rf /", "-leading", "", "x" * 64, "ünï", "a/b", "a\nb"])
async def test_unsafe_ids_are_rejected_not_mangled(manager: ContainerManager, bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        await manager.create_container("fine", bad, "python")
    with pytest.raises(InvalidIdentifier):
        await manager.create_container(bad, "fine", "python")
    assert manager.tasks == {}


async def test_unknown_task_and_language_and_idempotent_destroy(manager: ContainerManager, unique: str) -> None:
    with pytest.raises(TaskNotFound):
        await manager.exec_command(f"nope{unique}", "true")
    with pytest.raises(UnknownLanguage):
        await manager.create_container(f"t{unique}", f"p{unique}", "cobol")
    assert await manager.destroy_container(f"nope{unique}") is False
    await manager.create_container(f"t{unique}", f"p{unique}", "python")
    assert await manager.destroy_container(f"t{unique}") is True
    assert await manager.destroy_container(f"t{unique}") is False
    with pytest.raises(TaskNotFound):
        await manager.exec_command(f"t{unique}", "true")


async def test_task_context_destroys_even_when_the_body_raises(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, installation_id: str
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with manager.task(f"t{unique}", f"p{unique}", "python") as sandbox:
            await sandbox.exec("true")
            raise RuntimeError("boom")
    await manager.settle()
    assert _ours(docker_client, installation_id, **{labels.TASK: f"t{unique}"}) == []


async def test_shutdown_destroys_only_what_this_manager_created(
    runtime_config: RuntimeConfig, python_image: Language, docker_client: docker.DockerClient,
    unique: str, installation_id: str,
) -> None:
    mine, other = ContainerManager(runtime_config), ContainerManager(runtime_config)
    await mine.startup()
    await other.startup()
    try:
        for i in range(3):
            await mine.create_container(f"m{i}{unique}", f"p{unique}", "python")
        await other.create_container(f"o{unique}", f"p{unique}", "python")
        await mine.shutdown()
        left = _ours(docker_client, installation_id, **{labels.PROJECT: f"p{unique}"})
        assert [c.labels[labels.TASK] for c in left] == [f"o{unique}"]
        owned = {"label": [f"{labels.OWNER}={mine.owner.manager_id}"]}
        assert docker_client.containers.list(all=True, filters=owned) == []  # its network holders too
    finally:
        await other.shutdown()


async def test_observers_see_create_exec_and_destroy_with_usage(manager: ContainerManager, unique: str) -> None:
    recorder = Recorder()
    manager.add_observer(recorder)
    async with manager.task(f"t{unique}", f"p{unique}", "python") as sandbox:
        await sandbox.exec("python3 -c 'x = bytearray(50_000_000)'; echo oops >&2; exit 4")
    assert [e.kind for e in recorder.lifecycle] == ["create", "destroy"]
    (event,) = recorder.execs
    assert (event.exit_code, event.stderr_tail, event.stderr_bytes, event.language) == (4, "oops\n", 5, "python")
    usage = recorder.lifecycle[-1].usage
    if usage.peak_memory_bytes is None:
        pytest.skip("the container's cgroup is not readable from this host")
    assert usage.peak_memory_bytes > 50_000_000
    assert usage.cpu_seconds is not None and usage.cpu_seconds > 0
    assert usage.peak_pids is not None and usage.peak_pids >= 2


async def test_missing_image_names_the_build_command(
    runtime_config: RuntimeConfig, python_image: Language, unique: str
) -> None:
    mgr = ContainerManager(RuntimeConfig.load(network_name=runtime_config.network.name, image_tag=f"absent-{unique}"))
    await mgr.startup()
    try:
        assert mgr.images["python"] is False
        with pytest.raises(ImageMissing, match=r"nox -s build -- python"):
            await mgr.create_container(f"t{unique}", f"p{unique}", "python")
        assert mgr.tasks == {}
    finally:
        await mgr.shutdown()


async def test_required_language_without_image_fails_startup_with_the_build_command(
    runtime_config: RuntimeConfig, python_image: Language, unique: str
) -> None:
    mgr = ContainerManager(RuntimeConfig.load(
        network_name=runtime_config.network.name, image_tag=f"absent-{unique}", required_languages=("py",)
    ))
    try:
        with pytest.raises(ImageMissing, match=r"nox -s build -- python"):
            await mgr.startup()
    finally:
        await mgr.shutdown()


async def test_cancelled_creates_leave_no_container_behind(
    manager: ContainerManager, docker_client: docker.DockerClient, unique: str, installation_id: str
) -> None:
    delays = (0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.25, 0.4)
    for i, delay in enumerate(delays):
        creating = asyncio.create_task(manager.create_container(f"x{i}{unique}", f"p{unique}", "python"))
        await asyncio.sleep(delay)
        creating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await creating
        await manager.destroy_container(f"x{i}{unique}")  # in case the create won the race
    await asyncio.sleep(2)  # creations the engine finishes after the cancel are removed when they land
    await manager.settle()
    for i in range(len(delays)):
        assert _ours(docker_client, installation_id, **{labels.TASK: f"x{i}{unique}"}) == []
    assert manager.tasks == {}


async def test_dead_engine_is_a_clear_engine_unavailable(tmp_path: Any) -> None:
    dead = f"unix://{tmp_path}/no-engine.sock"
    mgr = ContainerManager(RuntimeConfig.load(docker_host=dead, network="none"))
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await mgr.startup()
    with pytest.raises(EngineUnavailable):
        await mgr.create_container("t", "p", "python")


async def test_network_none_per_task_has_no_interfaces_but_loopback(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t{unique}", f"p{unique}", "python", network="none") as sandbox:
        result = await sandbox.exec("ls /sys/class/net")
        assert result.stdout.split() == ["lo"]
        assert sandbox.info.network == "none"


async def test_startup_says_plainly_when_the_firewall_is_not_installed(
    docker_client: docker.DockerClient, python_image: Language, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    from runtime.backends.docker.network import remove_sandbox_network

    name = f"theappapp-nofw-{unique}"
    mgr = ContainerManager(RuntimeConfig.load(network_name=name, install_firewall=False))
    try:
        with caplog.at_level(logging.WARNING, logger="runtime.sandbox.manager"):
            await mgr.startup()
        status = mgr.network_status
        assert status is not None and status.network_name == name and status.icc_disabled
        assert not status.host_blocked and status.problems
        assert any("NOT fully isolated" in r.getMessage() for r in caplog.records)
    finally:
        await mgr.shutdown()
        remove_sandbox_network(docker_client, name)
