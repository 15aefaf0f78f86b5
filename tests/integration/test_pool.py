"""Warm pool against the real engine: one spare per task, per project, fresh image, nothing left behind."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import docker
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.registry import Language
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.pool import SPARE, SPARE_PREFIX, WarmPool
from tests.integration.conftest import remove_volumes

pytestmark = pytest.mark.integration


def _by_owner(client: docker.DockerClient, manager: ContainerManager) -> list[dict[str, Any]]:
    """Every sandbox of this manager, spares included (sparse: no per-container inspect to race with removal);
    not its network namespace holders, kept for a project's next sandbox (tests/integration/test_netns_reuse.py)."""
    mine = {"label": [f"{labels.OWNER}={manager.owner.manager_id}"]}
    return [c for c in client.api.containers(all=True, filters=mine) if labels.ROLE not in (c.get("Labels") or {})]


def _pool(manager: ContainerManager) -> WarmPool:
    assert manager.pool is not None
    return manager.pool


@pytest.fixture
async def pooled(runtime_config: RuntimeConfig, python_image: Language) -> AsyncIterator[ContainerManager]:
    """A manager whose pool refills nothing by itself: spares exist only where a test prewarms."""
    config = RuntimeConfig.load(
        network_name=runtime_config.network.name, pool_enabled=True, pool_spares_per_key=0, pool_max_per_key=4,
    )
    mgr = ContainerManager(config)
    await mgr.startup()
    yield mgr
    await mgr.shutdown()


async def test_a_spare_is_handed_to_exactly_one_of_concurrent_creates(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    project = f"p{unique}"
    assert await pooled.prewarm(project, "python", 1) == 1
    (spare,) = _pool(pooled).spares()

    infos = await asyncio.gather(*(pooled.create_container(f"t{i}{unique}", project, "python") for i in range(4)))

    ids = [info.container_id for info in infos]
    assert len(set(ids)) == 4, "two tasks share a container"
    assert ids.count(spare.container_id) == 1
    assert _pool(pooled).counts["hit"] == 1 and _pool(pooled).size == 0
    for info in infos:  # each container carries its own task's name, the handed-over spare included
        assert docker_client.api.inspect_container(info.container_id)["Name"] == f"/{info.container_name}"
        result = await pooled.exec_command(info.task_id, "echo $HOSTNAME")
        assert result.exit_code == 0 and info.container_id.startswith(result.stdout.strip())


async def test_a_spare_for_project_a_never_serves_project_b(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    a, b = f"pa{unique}", f"pb{unique}"
    await pooled.prewarm(a, "python", 1)
    (spare,) = _pool(pooled).spares()

    info_b = await pooled.create_container(f"tb{unique}", b, "python")

    assert info_b.container_id != spare.container_id
    assert _pool(pooled).ready(a, "python") == 1  # still waiting for project A
    mounts = {m["Destination"]: m["Name"] for m in docker_client.api.inspect_container(info_b.container_id)["Mounts"]}
    assert mounts["/workspace"] == f"theappapp-project-{b}"
    # And the spare, once it serves A, has A's files and not B's.
    await pooled.write_files(f"tb{unique}", {"only-b.txt": "b"})
    info_a = await pooled.create_container(f"ta{unique}", a, "python")
    assert info_a.container_id == spare.container_id
    result = await pooled.exec_command(f"ta{unique}", "ls -A /workspace")
    assert "only-b.txt" not in result.stdout


async def test_a_spare_is_labelled_with_what_is_known_at_creation_and_renamed_at_hand_over(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str, installation_id: str
) -> None:
    await pooled.prewarm(f"p{unique}", "py", 1)
    (spare,) = _pool(pooled).spares()
    attrs = docker_client.api.inspect_container(spare.container_id)
    got = attrs["Config"]["Labels"]
    assert attrs["Name"].startswith(f"/{SPARE_PREFIX}")
    assert got[labels.POOL] == SPARE and got[labels.MANAGED] == "true"
    assert (got[labels.PROJECT], got[labels.LANGUAGE]) == (f"p{unique}", "python")
    assert got[labels.OWNER] == pooled.owner.manager_id and got[labels.INSTALLATION] == installation_id
    assert labels.TASK not in got  # the task is not known yet: it lives in the name after hand-over
    # Same hardening as a cold container.
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and attrs["Config"]["User"] == "1000:1000"

    info = await pooled.create_container(f"t{unique}", f"p{unique}", "python")
    assert info.container_id == spare.container_id
    await pooled.settle()  # the rename to the task's name runs beside the task's first steps
    assert docker_client.api.inspect_container(info.container_id)["Name"] == f"/theappapp-p{unique}-t{unique}"


async def test_pool_shutdown_leaves_nothing_behind(
    runtime_config: RuntimeConfig, python_image: Language, docker_client: docker.DockerClient, unique: str
) -> None:
    # Auto refill on: tasks below leave spares being made in the background when shutdown starts.
    mgr = ContainerManager(RuntimeConfig.load(network_name=runtime_config.network.name, pool_spares_per_key=2))
    await mgr.startup()
    try:
        await mgr.prewarm(f"p1{unique}", "python", 2)
        await mgr.prewarm(f"p2{unique}", "python", 1)
        await mgr.create_container(f"t{unique}", f"p3{unique}", "python")  # starts a refill for p3
        assert len(_by_owner(docker_client, mgr)) >= 4
    finally:
        await mgr.shutdown()
    assert _by_owner(docker_client, mgr) == []


async def test_a_spare_made_before_an_image_rebuild_is_not_handed_out(
    runtime_config: RuntimeConfig, python_image: Language, docker_client: docker.DockerClient, unique: str
) -> None:
    tag = f"pool-{unique}"  # our own tag: theappapp-python:latest stays untouched for other tests
    repo = python_image.image
    docker_client.api.tag(f"{repo}:latest", repo, tag)
    config = RuntimeConfig.load(network_name=runtime_config.network.name, image_tag=tag, pool_spares_per_key=0)
    mgr = ContainerManager(config)
    await mgr.startup()
    try:
        await mgr.prewarm(f"p{unique}", "python", 2)
        old = {s.container_id for s in _pool(mgr).spares()}
        assert len(old) == 2
        dockerfile = f"FROM {repo}:{tag}\nLABEL org.theappapp.test.rebuilt={unique}\n".encode()
        rebuilt, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{repo}:{tag}", rm=True)

        info = await mgr.create_container(f"t{unique}", f"p{unique}", "python")

        assert info.container_id not in old
        assert docker_client.api.inspect_container(info.container_id)["Image"] == rebuilt.id
        assert _pool(mgr).counts["stale"] == 1 and _pool(mgr).size == 0  # both old spares dropped
        await mgr.settle()
        gone = {c["Id"] for c in _by_owner(docker_client, mgr)}
        assert not old & gone
    finally:
        await mgr.shutdown()
        docker_client.api.remove_image(f"{repo}:{tag}", force=True)


async def test_a_failed_spare_creation_never_fails_a_task(
    pooled: ContainerManager, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _pool(pooled)

    async def broken(key: tuple[str, str], remove_soon: Any) -> Any:
        raise RuntimeError("injected: the engine refused the spare")

    monkeypatch.setattr(pool.maker, "make", broken)
    assert await pooled.prewarm(f"p{unique}", "python", 2) == 0
    assert pool.counts["failed"] == 2

    async with pooled.task(f"t{unique}", f"p{unique}", "python") as sandbox:
        result = await sandbox.exec("echo cold")
    assert (result.exit_code, result.stdout) == (0, "cold\n")


async def test_a_spare_that_vanished_before_hand_over_means_a_cold_create(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    await pooled.prewarm(f"p{unique}", "python", 1)
    (spare,) = _pool(pooled).spares()
    docker_client.api.remove_container(spare.container_id, force=True)  # behind the pool's back

    async with pooled.task(f"t{unique}", f"p{unique}", "python") as sandbox:
        assert sandbox.info.container_id != spare.container_id
        result = await sandbox.exec("echo cold")
    assert result.stdout == "cold\n"
    assert _pool(pooled).counts["failed"] == 1


async def test_destroy_returns_before_removal_and_the_same_task_can_start_again(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str
) -> None:
    first = await pooled.create_container(f"t{unique}", f"p{unique}", "python")
    t0 = time.perf_counter()
    assert await pooled.destroy_container(f"t{unique}") is True
    assert time.perf_counter() - t0 < 0.05  # detached, not removed: an engine remove takes ~80 ms
    second = await pooled.create_container(f"t{unique}", f"p{unique}", "python")  # waits for the old name
    assert second.container_id != first.container_id
    await pooled.settle()
    ids = {c["Id"] for c in _by_owner(docker_client, pooled)}
    assert first.container_id not in ids and second.container_id in ids


async def test_a_spare_is_leased_from_its_start_and_ends_itself_unless_renewed(
    pooled: ContainerManager, docker_client: docker.DockerClient, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manager killed between a spare's start and its first renewal must not leave it running: the
    spare is made here as the pool makes it, and nobody renews it (a 2 s lease instead of 15, to wait less)."""
    from runtime.sandbox import spare_maker

    monkeypatch.setattr(spare_maker, "LEASE_SECONDS", 2.0)
    removals: list[str] = []
    spare = await _pool(pooled).maker.make((f"p{unique}", "python"), removals.append)
    try:
        t0 = time.monotonic()
        while docker_client.api.inspect_container(spare.container_id)["State"]["Running"]:
            assert time.monotonic() - t0 < 12, "the spare kept running with nobody to renew its lease"
            await asyncio.sleep(0.25)
        assert time.monotonic() - t0 > 1.0  # (it ran until its lease was up: it did start)
    finally:
        docker_client.api.remove_container(spare.container_id, force=True)
    assert removals == []


async def test_idle_spares_go_after_the_ttl(
    runtime_config: RuntimeConfig, python_image: Language, docker_client: docker.DockerClient, unique: str
) -> None:
    mgr = ContainerManager(RuntimeConfig.load(
        network_name=runtime_config.network.name, pool_spares_per_key=0, pool_idle_ttl=1.0,
    ))
    await mgr.startup()
    try:
        assert await mgr.prewarm(f"p{unique}", "python", 1) == 1
        await asyncio.sleep(1.6)
        assert _pool(mgr).size == 0 and _pool(mgr).counts["expired"] == 1
        await mgr.settle()
        assert _by_owner(docker_client, mgr) == []
    finally:
        await mgr.shutdown()


async def test_the_pool_off_creates_cold_and_prewarm_does_nothing(
    runtime_config: RuntimeConfig, python_image: Language, docker_client: docker.DockerClient, unique: str
) -> None:
    mgr = ContainerManager(RuntimeConfig.load(network_name=runtime_config.network.name, pool_enabled=False))
    await mgr.startup()
    try:
        assert mgr.pool is None
        assert await mgr.prewarm(f"p{unique}", "python", 3) == 0
        async with mgr.task(f"t{unique}", f"p{unique}", "python") as sandbox:
            assert (await sandbox.exec("true")).exit_code == 0
        await mgr.settle()
        assert _by_owner(docker_client, mgr) == []
    finally:
        await mgr.shutdown()


SPARE_SCRIPT = """
import asyncio, os, sys
from runtime.sandbox.manager import ContainerManager

async def main(project, mode):
    manager = ContainerManager()
    await manager.startup()
    assert await manager.prewarm(project, "python", 2) == 2
    async with manager.task("t1", project, "python") as box:  # uses one spare; its replacement follows
        assert (await box.exec("echo ok")).stdout == "ok\\n"
    await manager.prewarm(project, "python", 2)
    print("READY", flush=True)
    if mode == "wait":
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))  # and exit without shutdown()
"""


def _spares_of(client: docker.DockerClient, installation: str, *, running: bool) -> list[dict[str, Any]]:
    found = client.api.containers(all=not running, filters={"label": [
        f"{labels.INSTALLATION}={installation}", f"{labels.POOL}={SPARE}"]})
    return [c for c in found if c["Names"][0].lstrip("/").startswith(SPARE_PREFIX)]


def _holders_of(client: docker.DockerClient, installation: str, *, running: bool) -> list[dict[str, Any]]:
    """Its network namespace holders (runtime/backends/docker/netns.py): they must not outlive it either."""
    return client.api.containers(all=not running, filters={"label": [
        f"{labels.INSTALLATION}={installation}", f"{labels.ROLE}=netns"]})


def _run_spare_script(installation: str, project: str, mode: str) -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "THEAPPAPP_INSTALLATION_ID": installation, "THEAPPAPP_NETWORK": "none",
           "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", SPARE_SCRIPT, project, mode], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        raise AssertionError(f"script failed: {line!r} {proc.communicate(timeout=30)[1][-3000:]}")
    return proc


@pytest.fixture
def own_installation(docker_client: docker.DockerClient) -> Any:
    import uuid

    installation = f"test-pool-{uuid.uuid4().hex[:10]}"
    yield installation
    ours = {"label": [f"{labels.INSTALLATION}={installation}"]}
    for c in docker_client.api.containers(all=True, filters=ours):
        docker_client.api.remove_container(c["Id"], force=True)
    remove_volumes(docker_client, docker_client.volumes.list(filters=ours))


def test_a_manager_that_exits_without_shutdown_leaves_no_spare(
    docker_client: docker.DockerClient, python_image: Language, own_installation: str
) -> None:
    proc = _run_spare_script(own_installation, "exits", "exit")
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert _spares_of(docker_client, own_installation, running=False) == []  # removed at interpreter exit
    assert _holders_of(docker_client, own_installation, running=False) == []


def test_the_spares_of_a_killed_manager_stop_themselves_within_their_lease(
    docker_client: docker.DockerClient, python_image: Language, own_installation: str
) -> None:
    import os
    import signal

    from runtime.sandbox.pool import LEASE_SECONDS

    proc = _run_spare_script(own_installation, "killed", "wait")
    assert len(_spares_of(docker_client, own_installation, running=True)) >= 2
    assert _holders_of(docker_client, own_installation, running=True)  # so the test below means something
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    t0 = time.monotonic()
    while running := [c["Names"][0] for c in [*_spares_of(docker_client, own_installation, running=True),
                                              *_holders_of(docker_client, own_installation, running=True)]]:
        assert time.monotonic() - t0 < LEASE_SECONDS + 10, f"kept running with nobody to renew: {running}"
        time.sleep(0.5)
    print(f"the killed manager's spares stopped {time.monotonic() - t0:.1f}s after the kill")
