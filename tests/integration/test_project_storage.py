"""Project storage on a real engine, through the manager: the quota tried by filling it, snapshots
restored byte for byte, forks, a project reaching for another's snapshot, the CLI.

The storage root is this session's own (a pool of its own under /var/lib), so nothing here touches
an installation's projects; the engine-restart test is in test_storage_restart.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from runtime.config import RuntimeConfig
from runtime.errors import InvalidIdentifier, InvalidRequest, SandboxError
from runtime.monitoring.monitor import SandboxMonitor
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.manager import ContainerManager

from .conftest import NETWORK, SESSION, image_or_skip
from .storage_cleanup import remove_root

pytestmark = pytest.mark.integration
ROOT = Path(f"/var/lib/theappapp-test-storage-{SESSION}")
QUOTA = "320m"  # XFS's smallest filesystem is 300 MiB

# Every entry under /workspace: type, mode, owner, and its content's hash or its link's target.
MANIFEST = ("cd /workspace && find . -mindepth 1 -printf '%y %m %U:%G %p -> %l\\n' | sort && "
            "find . -type f -print0 | sort -z | xargs -0 -r sha256sum")


def storage_config(**more: object) -> RuntimeConfig:
    return RuntimeConfig.load(network_name=NETWORK, storage_enabled=True, storage_root=str(ROOT),
                              storage_pool_size="16g", pool_enabled=False, **more)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def storage_root(docker_client: docker.DockerClient) -> Iterator[Path]:
    image_or_skip(docker_client, "python")
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("disk quotas need root and xfsprogs (mkfs.xfs) on the engine's host")
    yield ROOT
    # The session's containers and volumes are removed by conftest; then this pool goes.
    for container in docker_client.containers.list(all=True, filters={"name": f"-s{SESSION[:4]}"}):
        container.remove(force=True)
    remove_root(ROOT)


@pytest.fixture
async def manager(storage_root: Path, tmp_path: Path) -> AsyncIterator[ContainerManager]:
    mgr = ContainerManager(storage_config(monitor_db=str(tmp_path / "monitor.sqlite3")))
    await mgr.startup()
    assert mgr.storage_status is not None and mgr.storage_status.enforced, mgr.storage_status
    yield mgr
    await mgr.shutdown()


async def ok(box: Sandbox, command: str, timeout: float = 120) -> str:
    result = await box.exec(command, timeout=timeout)
    assert result.exit_code == 0, f"{command}: {result.stdout[-1000:]} {result.stderr[-2000:]}"
    return result.stdout


async def test_a_fill_stops_at_the_quota_and_everything_else_keeps_working(manager: ContainerManager,
                                                                          unique: str) -> None:
    pool = ROOT / "pool.img"
    before = pool.stat().st_blocks * 512
    async with manager.task(f"a{unique}", f"full{unique}", "python", disk_quota=QUOTA) as box, \
            manager.task(f"b{unique}", f"other{unique}", "python", disk_quota=QUOTA) as other:
        assert "320M" in await ok(box, "df -h /workspace")  # the quota is the filesystem's size
        result = await box.exec("dd if=/dev/zero of=/workspace/fill bs=1M count=3000", timeout=120)
        assert result.exit_code != 0 and "No space left on device" in result.stderr, result.stderr
        grown = pool.stat().st_blocks * 512 - before
        assert grown < 2 * 400 * 1024**2, f"the pool grew by {grown} bytes for two 320 MiB projects"
        assert (await ok(box, "echo still here")).strip() == "still here"  # the sandbox lives on
        await ok(other, "dd if=/dev/zero of=/workspace/f bs=1M count=50")  # another project writes on
        await ok(box, "rm /workspace/fill && dd if=/dev/zero of=/workspace/again bs=1M count=50")
        usage = await manager.disk_usage(f"full{unique}")
        assert usage.quota == 320 * 1024**2 and 50 * 1024**2 <= usage.used < 120 * 1024**2
        assert await manager.set_disk_quota(f"full{unique}", "400m") == 400 * 1024**2
        await ok(box, "dd if=/dev/zero of=/workspace/more bs=1M count=300")  # past the old quota: grown, live
    async with manager.task(f"c{unique}", f"new{unique}", "python") as fresh:  # the engine still makes tasks
        assert "2.0G" in await ok(fresh, "df -h /workspace")  # the configured default quota
    monitor = next(o for o in manager.observers.members if isinstance(o, SandboxMonitor))
    monitor.flush()
    assert ("disk_full", "ENOSPC") in {(p.outcome, p.error_type) for p in monitor.error_patterns()}


async def test_a_restored_snapshot_is_the_workspace_byte_for_byte(manager: ContainerManager, unique: str) -> None:
    project = f"snap{unique}"
    async with manager.task(f"a{unique}", project, "python", disk_quota=QUOTA) as box:
        await ok(box, "mkdir -p src/empty deep/er && printf 'one' > src/a.txt && chmod 640 src/a.txt"
                      " && ln -s src/a.txt link && ln -s /etc/passwd abs-link && mkfifo pipe"
                      " && head -c 5000000 /dev/urandom > deep/er/blob && chmod 711 deep")
        original = await ok(box, MANIFEST)
        snapshot = await manager.snapshot_project(project, name="before")
        await ok(box, "rm -rf src link && printf 'two' > new.txt && chmod 600 deep/er/blob")
        assert await ok(box, MANIFEST) != original
    await manager.restore_project(project, snapshot)
    async with manager.task(f"b{unique}", project, "python") as box:
        assert await ok(box, MANIFEST) == original
    assert [(s.id, s.name) for s in await manager.list_snapshots(project)] == [(snapshot, "before")]


async def test_a_fork_starts_as_its_source_and_never_changes_it(manager: ContainerManager, unique: str) -> None:
    source, fork = f"src{unique}", f"fork{unique}"
    async with manager.task(f"a{unique}", source, "python", disk_quota=QUOTA) as box:
        await ok(box, "printf 'v1' > state.txt")
        snapshot = await manager.snapshot_project(source)
        await ok(box, "printf 'v2' > state.txt")
        before = await ok(box, MANIFEST)
        await manager.fork_project(source, fork)  # the source as it is now, while its task runs
        await manager.fork_project(source, f"{fork}-old", snapshot)
        async with manager.task(f"b{unique}", fork, "python") as forked:
            assert (await ok(forked, "cat state.txt")) == "v2"
            await ok(forked, "printf 'changed in the fork' > state.txt && touch only-in-fork")
        async with manager.task(f"c{unique}", f"{fork}-old", "python") as old:
            assert (await ok(old, "cat state.txt")) == "v1"
        assert await ok(box, MANIFEST) == before
    assert (await manager.disk_usage(fork)).quota == 320 * 1024**2  # the source's quota came along
    for project in (fork, f"{fork}-old"):
        await manager.delete_project_volume(project)


async def test_a_project_cannot_reach_another_projects_snapshot(manager: ContainerManager, unique: str) -> None:
    alice, bob = f"alice{unique}", f"bob{unique}"
    async with manager.task(f"a{unique}", alice, "python", disk_quota=QUOTA) as box:
        await ok(box, "printf 'secret' > secret.txt")
    secret = await manager.snapshot_project(alice)
    async with manager.task(f"b{unique}", bob, "python", disk_quota=QUOTA) as box:
        # Its only writable filesystem is its own volume's: no other project's, no pool, no snapshot mounted.
        mounts = (await ok(box, "cat /proc/self/mountinfo")).splitlines()
        xfs = [m for m in mounts if " - xfs " in m]
        assert [m.split()[4] for m in xfs] == ["/workspace"], xfs
        assert not any(word in m for m in mounts for word in ("snapshots", "/pool", alice))
        assert "secret" not in await ok(box, "ls -a /workspace")
    for attempt in (manager.restore_project(bob, secret), manager.fork_project(bob, f"x{unique}", secret)):
        with pytest.raises(InvalidRequest):
            await attempt
    assert await manager.delete_snapshot(bob, secret) is False
    assert secret not in {s.id for s in await manager.list_snapshots(bob)}
    for bad in ("../" + secret, f"{secret}/..", "/etc"):
        with pytest.raises(InvalidIdentifier):
            await manager.restore_project(bob, bad)
    assert {s.id for s in await manager.list_snapshots(alice)} == {secret}


async def test_a_restore_waits_for_no_task_but_refuses_while_one_runs(manager: ContainerManager,
                                                                     unique: str) -> None:
    project = f"busy{unique}"
    async with manager.task(f"a{unique}", project, "python", disk_quota=QUOTA):
        pass  # the volume's first container: Docker's volume route, which fills it from the image
    async with manager.task(f"b{unique}", project, "python") as box:
        snapshot = await manager.snapshot_project(project)
        with pytest.raises(InvalidRequest, match="while its tasks run"):
            await manager.restore_project(project, snapshot)
        # Bound straight from its filesystem now (no engine volume mount per start), and still known in use.
        with pytest.raises(SandboxError, match="in use"):
            await manager.delete_project_volume(project)
        assert (await ok(box, "echo alive")).strip() == "alive"


async def test_a_language_cache_has_a_bound_of_its_own(manager: ContainerManager, docker_client: docker.DockerClient,
                                                       unique: str) -> None:
    image_or_skip(docker_client, "go")
    async with manager.task(f"a{unique}", f"go{unique}", "go", disk_quota=QUOTA) as box:
        sizes = await ok(box, "df -B1M --output=size /cache /workspace | tail -2")
        assert [int(v) for v in sizes.split()] == [1024, 320]  # cache_quota (1g), and the project's
        assert int(await ok(box, "find /cache -type f | wc -l")) > 100  # filled from the image on first use
    async with manager.task(f"b{unique}", f"go{unique}", "go") as box:  # bound straight from now on: still there
        assert int(await ok(box, "find /cache -type f | wc -l")) > 100


def test_the_command_line_snapshots_restores_forks_and_shows_usage(storage_root: Path, unique: str) -> None:
    env = {**os.environ, "THEAPPAPP_STORAGE_ENABLED": "true", "THEAPPAPP_STORAGE_ROOT": str(ROOT),
           "THEAPPAPP_NETWORK_NAME": NETWORK,
           "THEAPPAPP_MONITOR_ENABLED": "false", "THEAPPAPP_POOL_ENABLED": "false"}
    project = f"cli{unique}"

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    cli("run", "python", "-c", "open('/workspace/a.txt', 'w').write('v1')", "--project", project, "-q")
    snapshot = cli("snapshot", project, "--name", "first").strip()
    assert snapshot in cli("snapshots", project) and "first" in cli("snapshots", project)
    cli("run", "python", "-c", "open('/workspace/a.txt', 'w').write('v2')", "--project", project, "-q")
    assert "restored" in cli("restore", project, snapshot)
    assert cli("run", "python", "-c", "print(open('/workspace/a.txt').read())", "--project", project, "-q") == "v1\n"
    cli("fork", project, f"{project}-f")
    assert "quota 2 GiB" in cli("quota", project) and "quota 3 GiB" in cli("quota", project, "3g")
    listing = cli("ls")
    row = next(line for line in listing.splitlines() if f"theappapp-project-{project} " in line)
    assert "3 GiB" in row and f"1 (newest {snapshot})" in row
    assert f"theappapp-project-{project}-f" in listing
    asyncio.run(_forget(project, f"{project}-f"))


async def _forget(*projects: str) -> None:
    manager = ContainerManager(storage_config(monitor_enabled=False))
    await manager.startup()
    try:
        for project in projects:
            await manager.delete_project_volume(project)
    finally:
        await manager.shutdown()
