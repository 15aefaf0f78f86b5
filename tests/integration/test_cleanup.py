"""Orphan cleanup against the real engine: a manager killed with SIGKILL leaves orphans behind.

Each test uses its own installation id, so the cleanup it runs can only ever see what
the test itself created (the engine is shared with other test runs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.ops.scheduler import CleanupScheduler
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.owner import host_identity, task_of
from tests.integration.conftest import remove_volumes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# The doomed manager: two tasks of one project, a file in the project volume, then it waits to be killed.
MANAGER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from runtime.sandbox.manager import ContainerManager

    async def main(project):
        manager = ContainerManager()
        await manager.startup()
        await manager.create_container("task-a", project, "python")
        await manager.create_container("task-b", project, "python")
        await manager.write_files("task-a", {"keep/notes.txt": "survives cleanup\\n"})
        # A warm hand-over renames the spare to the task's name in the background: wait for it,
        # or a kill inside that window leaves a container that (rightly) reads as a dead spare.
        await manager.settle()
        print("READY", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1]))
    """
)


def _env(installation: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"THEAPPAPP_INSTALLATION_ID": installation, "THEAPPAPP_NETWORK": "none", "PYTHONPATH": str(ROOT)})
    return env


def _ours(client: docker.DockerClient, installation: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": [f"{labels.INSTALLATION}={installation}"]}))


def _tasks(client: docker.DockerClient, installation: str) -> set[str]:
    """Tasks served by the installation's containers; warm-pool spares count as "(spare)", network
    namespace holders as "(netns)"."""
    return {task_of(c.labels, c.name) for c in _ours(client, installation)}


@pytest.fixture
def installation(docker_client: docker.DockerClient) -> Iterator[str]:
    """A fresh installation id; whatever carries it is removed after the test."""
    inst = f"test-cleanup-{uuid.uuid4().hex[:10]}"
    yield inst
    for container in _ours(docker_client, inst):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:  # a manager's own background removal may be under way
            if err.status_code != 409:
                raise
    time.sleep(0.5)  # (such a removal done, the volumes are free)
    remove_volumes(docker_client, docker_client.volumes.list(filters={"label": [f"{labels.INSTALLATION}={inst}"]}))


def _killed_manager(installation: str, project: str) -> None:
    """Run the manager script until it is ready, then SIGKILL it: no shutdown, no destroy."""
    proc = subprocess.Popen(
        [sys.executable, "-c", MANAGER_SCRIPT, project], env=_env(installation), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until READY or the script dies
        if line.strip() != "READY":
            proc.kill()
            raise AssertionError(f"manager script failed: {line!r} {proc.communicate(timeout=30)[1][-2000:]}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _cleanup_cli(installation: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cleanup", *args], env=_env(installation), cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def foreign(docker_client: docker.DockerClient, python_image: Language) -> Iterator[Any]:
    """A container that looks like ours in every way but the installation id — and is long expired."""
    other = f"test-foreign-{uuid.uuid4().hex[:10]}"
    container = docker_client.containers.run(
        f"{python_image.image}:latest", ["sleep", "600"], detach=True, network_mode="none",
        name=f"theappapp-foreign-{uuid.uuid4().hex[:8]}",
        labels={
            labels.MANAGED: "true", labels.INSTALLATION: other, labels.EXPIRES_AT: "1",
            labels.OWNER_HOST: host_identity(), labels.OWNER_PID: "999999999", labels.OWNER_STARTED: "1",
        },
    )
    yield container
    container.remove(force=True)  # ours to remove: this test made it


async def test_cleanup_removes_a_killed_managers_containers_and_nothing_else(
    docker_client: docker.DockerClient, python_image: Language, installation: str, foreign: Any
) -> None:
    project = f"proj-{uuid.uuid4().hex[:8]}"
    _killed_manager(installation, project)
    orphans = _tasks(docker_client, installation)
    assert {"task-a", "task-b"} <= orphans <= {"task-a", "task-b", "(spare)", "(netns)"}  # SIGKILL left them

    # A live manager of the same installation, with a task in the same project: must survive. It does
    # not take over the dead manager's tasks (that is tested below), so cleanup has orphans to find.
    live = ContainerManager(RuntimeConfig.load(
        installation_id=installation, network="none", pool_enabled=False, adopt_orphans=False))
    await live.startup()
    try:
        await live.create_container("task-live", project, "python")

        dry = _cleanup_cli(installation, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        # The live manager's: its task, and maybe a network holder made meanwhile for the project's next task.
        live_ones = [c for c in _ours(docker_client, installation) if c.labels[labels.OWNER] == live.owner.manager_id]
        assert dry.stdout.count("would remove container") == len(_ours(docker_client, installation)) - len(live_ones)
        assert "task=task-a" in dry.stdout and "task=task-b" in dry.stdout and "owner gone" in dry.stdout
        assert "task-live" not in dry.stdout
        assert orphans | {"task-live"} <= _tasks(docker_client, installation)  # the dry run removed nothing

        t0 = time.monotonic()
        done = _cleanup_cli(installation)
        took = time.monotonic() - t0
        assert done.returncode == 0, done.stderr
        assert "task=task-a" in done.stdout and "task=task-b" in done.stdout, done.stdout
        # The dead manager's spares and network holders went too.
        assert {c.id for c in _ours(docker_client, installation)} == {c.id for c in live_ones}
        foreign.reload()
        assert foreign.status == "running"  # other installation: untouched although expired, owner dead

        # The project's volume and its files are intact: read them back through the live task.
        assert docker_client.volumes.get(f"theappapp-project-{project}") is not None
        assert await live.read_file("task-live", "keep/notes.txt") == b"survives cleanup\n"
        # And through a fresh task created after cleanup.
        await live.create_container("task-fresh", project, "python")
        result = await live.exec_command("task-fresh", "cat keep/notes.txt")
        assert result.stdout == "survives cleanup\n"
        print(f"cleanup CLI removed 2 orphans in {took:.2f}s (process start included)")
    finally:
        await live.shutdown()


async def test_a_restarted_orchestrator_takes_over_its_running_tasks_and_cleanup_keeps_them(
    docker_client: docker.DockerClient, python_image: Language, installation: str
) -> None:
    """The orchestrator process is SIGKILLed with two live tasks; new managers of the installation take
    them over at startup (each task exactly once, even starting together), can use them by task id,
    and cleanup no longer calls them orphans."""
    project = f"proj-{uuid.uuid4().hex[:8]}"
    _killed_manager(installation, project)

    def manager() -> ContainerManager:
        return ContainerManager(RuntimeConfig.load(installation_id=installation, network="none", pool_enabled=False))

    first, second = manager(), manager()
    await asyncio.gather(first.startup(), second.startup())
    late = manager()
    try:
        assert sorted(first.adopted + second.adopted) == ["task-a", "task-b"]
        assert not set(first.adopted) & set(second.adopted)
        owner_of = {task: m for m in (first, second) for task in m.adopted}
        a, b = owner_of["task-a"], owner_of["task-b"]
        assert a.tasks["task-a"].project_id == project and a.tasks["task-a"].language == "python"
        assert await a.read_file("task-a", "keep/notes.txt") == b"survives cleanup\n"
        assert (await b.exec_command("task-b", "cat keep/notes.txt")).stdout == "survives cleanup\n"
        await a.write_files("task-a", {"after.txt": "written by the new manager"})

        await late.startup()
        assert late.adopted == []  # their owners are alive again: a live manager's tasks are never taken

        done = _cleanup_cli(installation)
        assert done.returncode == 0, done.stderr
        assert "task=task-a" not in done.stdout and "task=task-b" not in done.stdout, done.stdout
        assert {"task-a", "task-b"} == _tasks(docker_client, installation) - {"(spare)", "(netns)"}

        assert await a.destroy_container("task-a") is True
        await a.settle()
        assert "task-a" not in _tasks(docker_client, installation)
    finally:
        for m in (first, second, late):
            await m.shutdown()
    # Shutdown destroyed the taken-over task too (the dead manager's holders are cleanup's: unused now).
    assert _tasks(docker_client, installation) <= {"(spare)", "(netns)"}


async def test_project_volume_goes_only_on_explicit_request(
    docker_client: docker.DockerClient, python_image: Language, installation: str
) -> None:
    project = f"proj-{uuid.uuid4().hex[:8]}"
    volume = f"theappapp-project-{project}"
    # No warm pool here: a live manager's idle spare would hold the volume against the CLI (as it should).
    manager = ContainerManager(RuntimeConfig.load(installation_id=installation, network="none", pool_enabled=False))
    await manager.startup()
    try:
        async with manager.task("t1", project, "python") as sandbox:
            await sandbox.write_files({"data.txt": "x"})
        assert _cleanup_cli(installation).returncode == 0
        assert docker_client.volumes.get(volume)  # plain cleanup never removes volumes

        dry = _cleanup_cli(installation, "--volumes", "--project", project, "--dry-run")
        assert f"would remove volume {volume}" in dry.stdout
        assert docker_client.volumes.get(volume)

        done = _cleanup_cli(installation, "--volumes", "--project", project)
        assert done.returncode == 0 and f"removed volume {volume}" in done.stdout
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(volume)

        # The same manager uses the project again: the volume it made earlier was deleted by another
        # process, and must come back with our labels (an engine-made one would have none).
        await manager.create_container("t2", project, "python")
        assert docker_client.volumes.get(volume).attrs["Labels"][labels.INSTALLATION] == installation
        from runtime.errors import SandboxError

        with pytest.raises(SandboxError, match="in use"):
            await manager.delete_project_volume(project)
        await manager.destroy_container("t2")
        assert await manager.delete_project_volume(project) is True
        assert await manager.delete_project_volume(project) is False  # already gone
    finally:
        await manager.shutdown()


async def test_delete_project_volume_drops_the_pools_spares_for_it(
    docker_client: docker.DockerClient, python_image: Language, installation: str
) -> None:
    project = f"proj-{uuid.uuid4().hex[:8]}"
    manager = ContainerManager(RuntimeConfig.load(installation_id=installation, network="none", pool_enabled=True))
    await manager.startup()
    try:
        assert manager.pool is not None
        async with manager.task("t1", project, "python"):
            pass
        deadline = time.monotonic() + 60
        while manager.pool.ready(project, "python") < 1:  # the refill after the task ended
            assert time.monotonic() < deadline, "the pool never made a spare"
            await asyncio.sleep(0.1)
        assert await manager.delete_project_volume(project) is True
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(f"theappapp-project-{project}")
    finally:
        await manager.shutdown()


async def test_manager_refuses_to_delete_another_installations_volume(
    docker_client: docker.DockerClient, installation: str
) -> None:
    project = f"proj-{uuid.uuid4().hex[:8]}"
    volume = docker_client.volumes.create(
        f"theappapp-project-{project}", labels={labels.MANAGED: "true", labels.INSTALLATION: "someone-else"}
    )
    try:
        manager = ContainerManager(RuntimeConfig.load(installation_id=installation, network="none"))
        from runtime.errors import SandboxError

        with pytest.raises(SandboxError, match="left alone"):
            await manager.delete_project_volume(project)
        volume.reload()  # still there
        await manager.shutdown()
    finally:
        volume.remove(force=True)  # ours: this test made it


async def test_cleanup_from_another_pid_namespace_leaves_a_live_managers_sandboxes(
    docker_client: docker.DockerClient, python_image: Language, installation: str
) -> None:
    """Same hostname, own pid namespace: the live owner's pid does not exist there. The attack:
    a cleanup that trusted the hostname alone would call the owner dead and remove its sandbox."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to make a pid namespace")
    project = f"proj-{uuid.uuid4().hex[:8]}"
    live = ContainerManager(RuntimeConfig.load(installation_id=installation, network="none", pool_enabled=False))
    await live.startup()
    try:
        await live.create_container("task-live", project, "python")
        isolated = [unshare, "--pid", "--fork", "--mount-proc", sys.executable]
        probe = subprocess.run(
            [*isolated, "-c", f"import os; print(os.path.exists('/proc/{os.getpid()}'))"],
            capture_output=True, text=True, timeout=60, check=True,
        )
        assert probe.stdout.strip() == "False"  # control: in there, the owner's pid is indeed gone
        # Control: judged as if the namespaces were one host, the live sandbox would be an orphan.
        naive = (
            "import asyncio, sys; from runtime.backends import open_backend; from runtime.config import RuntimeConfig; "
            "from runtime.ops.cleanup import find_orphans; "
            "found = find_orphans(open_backend(RuntimeConfig.load()), sys.argv[1], host=sys.argv[2]); "
            "print([o.reason for o in asyncio.run(found)[0]])"
        )
        judged = subprocess.run(
            [*isolated, "-c", naive, installation, live.owner.host], cwd=ROOT, env=_env(installation),
            capture_output=True, text=True, timeout=60, check=True,
        )
        # (and its project's free network holder, made in the background for the next task)
        assert judged.stdout.strip() in ("['owner gone']", "['owner gone', 'unused network holder']")
        done = subprocess.run(
            [*isolated, "-m", "runtime.cleanup"], env=_env(installation), cwd=ROOT,
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "0 orphan(s)" in done.stdout and "container(s) kept" in done.stdout
        assert _tasks(docker_client, installation) - {"(netns)"} == {"task-live"}
        assert (await live.exec_command("task-live", "echo alive")).stdout == "alive\n"
    finally:
        await live.shutdown()


async def test_scheduler_removes_exited_and_expired_containers_in_process(
    docker_client: docker.DockerClient, python_image: Language, installation: str
) -> None:
    """The in-process job against real container states; a live, unexpired one of ours stays."""
    ours = {labels.MANAGED: "true", labels.INSTALLATION: installation,
            labels.OWNER_HOST: host_identity(), labels.OWNER_PID: str(os.getpid())}
    image = f"{python_image.image}:latest"
    far, past = str(int(time.time()) + 3600), str(int(time.time()) - 5)
    exited = docker_client.containers.run(image, ["true"], detach=True, network_mode="none",
                                          labels={**ours, labels.EXPIRES_AT: far, labels.TASK: "exited"})
    exited.wait(timeout=60)
    docker_client.containers.run(image, ["sleep", "600"], detach=True, network_mode="none",
                                 labels={**ours, labels.EXPIRES_AT: past, labels.TASK: "expired"})
    docker_client.containers.run(image, ["sleep", "600"], detach=True, network_mode="none",
                                 labels={**ours, labels.EXPIRES_AT: far, labels.TASK: "live"})
    scheduler = CleanupScheduler(RuntimeConfig.load(installation_id=installation), interval=3600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while scheduler.rounds < 1:
            assert time.monotonic() < deadline, "the first round never finished"
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    assert scheduler.last_report is not None
    assert sorted(o.reason for o in scheduler.last_report.removed) == ["exited", "expired"]
    assert _tasks(docker_client, installation) == {"live"}
