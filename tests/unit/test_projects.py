"""A project's workspace as a whole, on the in-memory backend: quotas, snapshots, restores, forks."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.config import RuntimeConfig
from runtime.errors import InvalidIdentifier, InvalidRequest
from runtime.sandbox.manager import ContainerManager
from runtime.units import GiB

from .fake_backend import FakeBackend


async def started(backend: FakeBackend | None = None, **settings: Any) -> tuple[ContainerManager, FakeBackend]:
    backend = backend or FakeBackend()
    config = RuntimeConfig.load(env={}, installation_id="unit", pool_enabled=False, monitor_enabled=False, **settings)
    manager = ContainerManager(config, backend=backend)
    await manager.startup()
    return manager, backend


async def test_a_new_project_gets_the_configured_quota_or_the_one_its_first_create_names() -> None:
    manager, backend = await started(disk_quota="3g")
    await manager.create_container("t1", "p1", "python")
    await manager.create_container("t2", "p2", "python", disk_quota="5g")
    assert backend.storage.quotas["theappapp-project-p1"] == 3 * GiB
    assert (await manager.disk_usage("p2")).quota == 5 * GiB
    # Named again for a project that has less (a spare or an earlier task made its volume): it grows.
    await manager.create_container("t3", "p1", "python", disk_quota="4g")
    assert backend.storage.quotas["theappapp-project-p1"] == 4 * GiB
    assert await manager.set_disk_quota("p1", "6g") == 6 * GiB
    with pytest.raises(InvalidRequest, match="cannot shrink"):
        await manager.set_disk_quota("p1", "1g")
    with pytest.raises(InvalidRequest, match="disk_quota"):
        await manager.create_container("t4", "p3", "python", disk_quota="lots")


async def test_a_snapshot_restores_the_workspace_it_was_taken_of() -> None:
    manager, backend = await started()
    await manager.create_container("t1", "p1", "python")
    await manager.write_files("t1", {"a.txt": "before"})
    first = await manager.snapshot_project("p1", name="clean")
    await manager.write_files("t1", {"a.txt": "after", "b.txt": "new"})
    with pytest.raises(InvalidRequest, match="while its tasks run: t1"):
        await manager.restore_project("p1", first)
    await manager.destroy_container("t1")
    await manager.restore_project("p1", first)
    assert backend.files["theappapp-project-p1"] == {"a.txt": b"before"}
    [snapshot] = await manager.list_snapshots("p1")
    assert (snapshot.id, snapshot.project_id, snapshot.name) == (first, "p1", "clean")
    assert await manager.delete_snapshot("p1", first) is True and await manager.list_snapshots("p1") == []
    assert await manager.delete_snapshot("p1", first) is False


async def test_a_fork_is_a_new_project_and_its_source_does_not_change() -> None:
    manager, backend = await started()
    await manager.create_container("t1", "src", "python", disk_quota="3g")
    await manager.write_files("t1", {"a.txt": "one"})
    snap = await manager.snapshot_project("src")
    await manager.write_files("t1", {"a.txt": "two"})
    await manager.fork_project("src", "at-snap", snap)
    await manager.fork_project("src", "now")
    assert backend.files["theappapp-project-at-snap"] == {"a.txt": b"one"}
    assert backend.files["theappapp-project-now"] == {"a.txt": b"two"}
    assert backend.storage.quotas["theappapp-project-now"] == 3 * GiB
    await manager.create_container("t2", "now", "python")
    await manager.write_files("t2", {"a.txt": "changed in the fork"})
    assert backend.files["theappapp-project-src"] == {"a.txt": b"two"}
    with pytest.raises(InvalidRequest, match="already has a volume"):
        await manager.fork_project("src", "now")
    with pytest.raises(InvalidRequest, match="has no volume to fork"):
        await manager.fork_project("nothing-here", "new")


async def test_a_project_never_reaches_another_projects_snapshot() -> None:
    manager, _ = await started()
    await manager.create_container("t1", "alice", "python")
    await manager.create_container("t2", "bob", "python")
    secret = await manager.snapshot_project("alice")
    await manager.destroy_container("t2")
    with pytest.raises(InvalidRequest, match="no snapshot"):
        await manager.restore_project("bob", secret)
    with pytest.raises(InvalidRequest, match="no snapshot"):
        await manager.fork_project("bob", "bob-copy", secret)
    assert await manager.delete_snapshot("bob", secret) is False
    assert [s.id for s in await manager.list_snapshots("bob")] == []
    for bad in ("../alice", "x/../../y", ""):
        with pytest.raises(InvalidIdentifier):
            await manager.restore_project("bob", bad)


async def test_without_enforced_storage_snapshots_say_why() -> None:
    backend = FakeBackend()
    backend.storage.ready = False
    manager, _ = await started(backend)
    await manager.create_container("t1", "p1", "python")
    assert manager.storage_status is not None and not manager.storage_status.enforced
    with pytest.raises(InvalidRequest, match="not available here: no storage in this fake"):
        await manager.snapshot_project("p1")
    assert "theappapp-project-p1" not in backend.storage.quotas  # a plain volume


async def test_a_project_with_no_volume_is_said_to_have_none_not_to_lack_a_quota() -> None:
    manager, _ = await started()
    with pytest.raises(InvalidRequest, match="'nosuch' has no volume to snapshot"):
        await manager.snapshot_project("nosuch")


async def test_storage_off_makes_plain_volumes_and_asks_nothing_of_the_storage() -> None:
    manager, backend = await started(storage_enabled=False)
    await manager.create_container("t1", "p1", "python")
    assert manager.storage_status is None and backend.specs["theappapp-p1-t1"].workspace.quota is None


async def test_a_quota_asked_for_where_none_can_be_kept_is_refused_not_ignored() -> None:
    backend = FakeBackend()
    backend.storage.ready = False
    manager, _ = await started(backend)
    with pytest.raises(InvalidRequest, match="not available here"):
        await manager.create_container("t1", "p1", "python", disk_quota="5g")
    assert not backend.containers and "t1" not in manager.tasks
