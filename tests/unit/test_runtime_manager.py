"""The manager: the process-wide instance, checks before any engine call, and its races and bookkeeping
against the in-memory backend (creates, destroys, the pool, observers, taking over a dead manager's tasks)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import ImageMissing, InvalidIdentifier, SandboxError, TaskExists, TaskNotFound
from runtime.monitoring.monitor import SandboxMonitor
from runtime.sandbox import manager as manager_module
from runtime.sandbox.events import ExecEvent, LifecycleEvent
from runtime.sandbox.manager import ContainerManager, get_container_manager
from runtime.sandbox.owner import Owner
from tests.unit.fake_backend import FakeBackend


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEAPPAPP_INSTALLATION_ID", "unit")
    monkeypatch.setattr(manager_module, "_instance", None)


def test_get_container_manager_is_one_instance_per_process() -> None:
    first = get_container_manager()
    assert get_container_manager() is first
    assert get_container_manager(first.config) is first
    with pytest.raises(SandboxError, match="another configuration"):
        get_container_manager(image_tag="other")


async def test_bad_ids_and_unknown_tasks_fail_before_any_engine_call() -> None:
    mgr = ContainerManager(RuntimeConfig.load(docker_host="unix:///nonexistent/engine.sock"))
    with pytest.raises(InvalidIdentifier):
        await mgr.create_container("ok", "bad id", "python")
    with pytest.raises(InvalidIdentifier):
        await mgr.create_container("../t", "ok", "python")
    with pytest.raises(TaskNotFound):
        await mgr.exec_command("unknown", "true")
    with pytest.raises(TaskNotFound):
        mgr.exec_stream("unknown", "true")
    with pytest.raises(TaskNotFound):
        await mgr.write_files("unknown", {"a": "b"})
    assert await mgr.destroy_container("unknown") is False


# -- the manager's races and bookkeeping, against the in-memory backend ----------------------------


def fake_manager(backend: FakeBackend | None = None, **settings: Any) -> ContainerManager:
    config = RuntimeConfig.load(env={}, installation_id="unit", **settings)
    return ContainerManager(config, backend=backend or FakeBackend())


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_exec(self, event: ExecEvent) -> None:
        self.events.append(event)

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        self.events.append(event)


async def test_a_destroy_during_a_create_waits_for_it_and_removes_what_it_made() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.1
    mgr = fake_manager(backend, pool_enabled=False, destroy_in_background=False)
    creating = asyncio.create_task(mgr.create_container("t", "p", "python"))
    await asyncio.sleep(0.02)
    assert await mgr.destroy_container("t") is True  # waited for the create, then removed it
    info = await creating
    assert info.task_id == "t" and "t" not in mgr.tasks and backend.containers == {}


async def test_a_task_re_created_under_a_name_still_being_removed_waits_for_the_removal() -> None:
    backend = FakeBackend()
    mgr = fake_manager(backend, pool_enabled=False)
    await mgr.create_container("t", "p", "python")
    backend.remove_delay = 0.2  # the engine takes its time; the name stays taken meanwhile
    assert await mgr.destroy_container("t")
    info = await mgr.create_container("t", "p", "python")  # no NameTaken: it waited
    assert [c.id for c in backend.containers.values()] == [info.container_id]
    await mgr.shutdown()


async def test_two_creates_of_one_task_cannot_both_start() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    mgr = fake_manager(backend, pool_enabled=False)
    results = await asyncio.gather(*(mgr.create_container("t", "p", "python") for _ in range(2)),
                                   return_exceptions=True)
    assert sum(isinstance(r, TaskExists) for r in results) == 1 and len(backend.containers) == 1


async def test_a_name_held_by_another_projects_task_is_an_id_collision_not_task_exists() -> None:
    backend = FakeBackend()
    mgr = fake_manager(backend, pool_enabled=False)
    await mgr.create_container("c", "a-b", "python")  # theappapp-a-b-c
    with pytest.raises(InvalidIdentifier, match="collide"):
        await mgr.create_container("b-c", "a", "python")  # theappapp-a-b-c too
    assert "b-c" not in mgr.tasks


async def test_a_missing_image_says_how_to_build_it_and_the_failure_is_recorded() -> None:
    recorder = Recorder()
    mgr = fake_manager(FakeBackend(images=()), pool_enabled=False)
    mgr.add_observer(recorder)
    with pytest.raises(ImageMissing, match="nox -s build -- python"):
        await mgr.create_container("t", "p", "python")
    assert [e.kind for e in recorder.events] == ["create_failed"] and "t" not in mgr.tasks


async def test_a_pool_hand_over_racing_a_drop_leaves_no_spare_behind() -> None:
    for delay in (0.0, 0.01, 0.03):
        backend = FakeBackend()
        mgr = fake_manager(backend)
        await mgr.startup()
        assert await mgr.prewarm("p", "python", 1) == 1
        backend.create_delay = delay
        create = asyncio.create_task(mgr.create_container("t", "p", "python"))
        dropped = await mgr.pool.drop("p") if mgr.pool else 0
        info = await create
        await mgr.settle()
        live = {c.id for c in backend.containers.values()}
        assert info.container_id in live  # the task has a container, spare or cold
        assert dropped + (mgr.pool.counts["hit"] if mgr.pool else 0) == 1  # the spare went exactly one way
        await mgr.destroy_container("t")
        await mgr.shutdown()
        assert backend.containers == {}


async def test_the_pool_learns_how_long_each_task_waited_for_its_container_warm_or_cold() -> None:
    backend = FakeBackend()
    mgr = fake_manager(backend)
    await mgr.startup()
    assert mgr.pool is not None
    demand = mgr.pool.demand.of(("p", "python"))
    backend.create_delay = 0.05
    await mgr.create_container("cold", "p", "python")  # no spare: the cold create is the wait
    assert 0.05 <= demand.last_wait < 1.0
    backend.create_delay = 0.0
    await mgr.pool.quiesce()
    await mgr.prewarm("p", "python", 1)
    await mgr.create_container("warm", "p", "python")
    assert demand.last_wait < 0.05  # a spare was ready
    for task in ("cold", "warm"):
        await mgr.destroy_container(task)
    await mgr.shutdown()


async def test_exec_results_reach_observers_and_the_task_handle_runs_code() -> None:
    recorder = Recorder()
    backend = FakeBackend()
    mgr = fake_manager(backend, pool_enabled=False, monitor_enabled=False)
    mgr.add_observer(recorder)
    async with mgr.task("t", "p", "python") as box:
        result = await box.exec("echo hi")
        assert result.exit_code == 0 and result.stdout == "echo hi\n"
        run = await box.run_code("print(1)")
        assert run.command == "python3 main.py" and run.filename == "main.py"
        assert backend.files["theappapp-project-p"]["main.py"] == b"print(1)"
    kinds = [getattr(e, "kind", "exec") for e in recorder.events]
    assert kinds == ["create", "exec", "exec", "destroy"]


async def test_a_manager_records_to_the_default_monitor_without_wiring(tmp_path: Path) -> None:
    db = tmp_path / "monitor.sqlite3"
    mgr = fake_manager(pool_enabled=False, monitor_db=str(db))
    monitor = next(o for o in mgr.observers.members if isinstance(o, SandboxMonitor))
    async with mgr.task("t", "p", "python") as box:
        await box.exec("exit 3")
    await mgr.shutdown()
    (rate,) = monitor.error_rates()
    assert (rate.language, rate.executions, rate.failures) == ("python", 1, 1)
    monitor.close()
    assert not any(isinstance(o, SandboxMonitor) for o in fake_manager(monitor_enabled=False).observers.members)


def _dead_pid() -> int:
    pid = 999_999
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def _task_labels(owner: Owner, task_id: str, pid: int | None = None) -> dict[str, str]:
    values = owner.labels(task_id=task_id, project_id="p", language="python", ttl=3600)
    if pid is not None:
        values[labels.OWNER_PID] = str(pid)
    return values


async def test_startup_takes_over_the_tasks_of_a_manager_that_is_gone_and_of_no_live_one() -> None:
    backend = FakeBackend()
    dead = Owner(installation="unit")
    live = Owner(installation="unit")  # this process: alive
    orphan = backend.add_container("theappapp-p-t1", _task_labels(dead, "t1", _dead_pid()),
                                   volumes=("theappapp-project-p",))
    backend.add_container("theappapp-p-t2", _task_labels(live, "t2"))
    backend.add_container("theappapp-p-t3", _task_labels(dead, "t3", _dead_pid()), state="exited")
    backend.add_container("theappapp-p-t4", {**_task_labels(dead, "t4", _dead_pid()),
                                             labels.INSTALLATION: "another"})
    spare = backend.add_container("theappapp_spare-p-python-1", {
        **_task_labels(dead, "", _dead_pid()), labels.POOL: "spare"})
    backend.files["theappapp-project-p"] = {"kept.txt": b"state"}
    mgr = fake_manager(backend, pool_enabled=False)
    await mgr.startup()
    assert mgr.adopted == ["t1"] and list(mgr.tasks) == ["t1"]
    assert spare.id not in backend.containers  # an idle spare of a dead manager serves nobody
    assert backend.containers[orphan.id].labels[labels.OWNER] == mgr.owner.manager_id
    assert await mgr.read_file("t1", "kept.txt") == b"state"
    assert (await mgr.exec_command("t1", "echo again")).stdout == "echo again\n"
    second = fake_manager(backend, pool_enabled=False)
    await second.startup()
    assert second.adopted == []  # t1's owner is alive now: never taken from a live manager
    assert await mgr.destroy_container("t1") is True


async def test_two_managers_starting_at_once_never_both_take_one_task() -> None:
    backend = FakeBackend()
    for i in range(5):
        backend.add_container(f"theappapp-p-t{i}", _task_labels(Owner(installation="unit"), f"t{i}", _dead_pid()))
    first, second = fake_manager(backend, pool_enabled=False), fake_manager(backend, pool_enabled=False)
    await asyncio.gather(first.startup(), second.startup())
    assert sorted(first.adopted + second.adopted) == [f"t{i}" for i in range(5)]
    assert not set(first.adopted) & set(second.adopted)


async def test_a_warm_hand_over_whose_name_is_taken_ends_the_task_with_the_collision() -> None:
    backend = FakeBackend()
    mgr = fake_manager(backend)
    await mgr.startup()
    assert await mgr.prewarm("a", "python", 1) == 1
    holder = backend.add_container("theappapp-a-b-c", {labels.PROJECT: "a-b", labels.TASK: "c"})  # another's
    info = await mgr.create_container("b-c", "a", "python")  # handed over; its rename comes after
    await mgr.settle()
    with pytest.raises(InvalidIdentifier, match="collide"):
        await mgr.exec_command("b-c", "true")
    assert info.container_id not in backend.containers and holder.id in backend.containers
    assert await mgr.destroy_container("b-c") is False
    await mgr.shutdown()
