"""WarmPool logic without Docker: caps, memory, freshness, hand-over races, TTL, shutdown, the rename gate."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.registry import get_registry
from runtime.sandbox.owner import Owner
from runtime.sandbox.pool import GATE, LOAD, SPARE, SPARE_PREFIX, EndpointGate, WarmPool, mem_available


class FakeAPI:
    """Just enough of docker-py's APIClient, with the engine's name uniqueness."""

    def __init__(self) -> None:
        self.image_id = "sha256:first"
        self.made: dict[str, dict[str, Any]] = {}
        self.fail_create = False
        self.create_delay = 0.0

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        if self.fail_create:
            raise docker.errors.APIError("injected create failure")
        time.sleep(self.create_delay)
        if any(c["name"] == kwargs["name"] for c in self.made.values()):
            raise docker.errors.APIError("conflict", response=SimpleNamespace(status_code=409))  # type: ignore[arg-type]
        cid = uuid.uuid4().hex
        self.made[cid] = {"name": kwargs["name"], "labels": kwargs["labels"], "image": self.image_id, "running": False}
        return {"Id": cid}

    def start(self, cid: str) -> None:
        self.made[cid]["running"] = True

    def inspect_container(self, cid: str) -> dict[str, Any]:
        if cid not in self.made:
            raise docker.errors.NotFound("no such container")
        c = self.made[cid]
        return {"Image": c["image"], "Name": "/" + c["name"],
                "State": {"Running": c["running"], "Status": "running" if c["running"] else "exited"}}

    def inspect_image(self, ref: str) -> dict[str, str]:
        return {"Id": self.image_id}

    def rename(self, cid: str, name: str) -> None:
        if cid not in self.made:
            raise docker.errors.NotFound("no such container")
        if any(c["name"] == name for c in self.made.values()):
            raise docker.errors.APIError("conflict", response=SimpleNamespace(status_code=409))  # type: ignore[arg-type]
        self.made[cid]["name"] = name

    def remove_container(self, cid: str, force: bool = False, v: bool = False) -> None:
        if self.made.pop(cid, None) is None:
            raise docker.errors.NotFound("no such container")

    def containers(self, **kwargs: Any) -> list[dict[str, Any]]:  # docker-py's own `all=` keyword
        wanted = [f.split("=", 1) for f in (kwargs.get("filters") or {}).get("label", [])]
        return [
            {"Id": cid, "Names": ["/" + c["name"]]}
            for cid, c in self.made.items()
            if (kwargs.get("all") or c["running"]) and all(c["labels"].get(k) == v for k, v in wanted)
        ]


class FakeEngine:
    def __init__(self) -> None:
        self.api = FakeAPI()
        self.client = SimpleNamespace(api=self.api)

    async def call(self, fn: Any, *args: Any, deadline: float | None = None, on_abandon: Any = None, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:
            future.set_exception(err)
        return future


def make_pool(engine: FakeEngine, **settings: Any) -> WarmPool:
    config = RuntimeConfig(installation_id="unit", **settings)
    registry = get_registry()
    return WarmPool(lambda: engine, config, Owner(installation="unit"), registry, "net")  # type: ignore[arg-type, return-value]


IMAGE = "theappapp-python:latest"


async def take(pool: WarmPool, project: str, task: str) -> str | None:
    return await pool.take(project, "python", image=IMAGE, network="net", name=f"theappapp-{project}-{task}")


def test_mem_available_reads_meminfo_and_is_none_when_unreadable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n")
    assert mem_available(meminfo) == 2048 * 1024
    assert mem_available(tmp_path / "absent") is None


def test_spare_labels_carry_what_is_known_and_no_task() -> None:
    pool = make_pool(FakeEngine(), pool_idle_ttl=100.0, container_ttl=1000.0)
    got = pool.spare_labels("proj", "python", now=5000.0)
    assert labels.TASK not in got
    assert got[labels.POOL] == SPARE and got[labels.PROJECT] == "proj" and got[labels.LANGUAGE] == "python"
    assert got[labels.MANAGED] == "true" and got[labels.INSTALLATION] == "unit"
    assert int(got[labels.EXPIRES_AT]) == 5000 + 100 + 1000  # idle wait plus a task's life


async def test_prewarm_respects_the_per_key_and_global_caps() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_max_per_key=2, pool_max_spares=3)
    assert await pool.prewarm("a", "python", 5) == 2
    assert await pool.prewarm("b", "python", 5) == 1  # the global cap leaves room for one
    assert await pool.prewarm("c", "python", 5) == 0
    assert len(engine.api.made) == 3
    assert all(c["name"].startswith(SPARE_PREFIX) for c in engine.api.made.values())


async def test_background_refills_are_capped_but_an_explicit_prewarm_is_not() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.02
    pool = make_pool(engine, pool_max_making=2, pool_spares_per_key=1)
    for project in "abcdef":
        pool.refill(project, "python")
    assert sum(pool._making.values()) == 2  # under load, spares must not crowd out task starts
    assert await pool.prewarm("g", "python", 3) == 3
    await asyncio.sleep(0.1)
    assert pool.size == 5


async def test_refills_wait_for_spare_engine_capacity_but_an_explicit_prewarm_does_not() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_fill_max_load=1)
    release = threading.Event()
    busy = [threading.Thread(target=GATE.shared_call, args=(release.wait, 5)) for _ in range(2)]
    for t in busy:  # two task starts or removals in flight: the engine is busy with task work
        t.start()
    try:
        while LOAD.busy < 2:
            await asyncio.sleep(0.001)
        pool.refill("a", "python")
        assert sum(pool._making.values()) == 0 and pool.counts["busy"] == 1
        assert await take(pool, "a", "t1") is None  # nothing in the making to wait for: cold, once
        assert engine.api.made == {}  # no engine work beyond what the task itself does
        assert await pool.prewarm("b", "python", 1) == 1  # the orchestrator's explicit call is not deferred
    finally:
        release.set()
        for t in busy:
            t.join(5)
    assert LOAD.busy == 0
    pool.refill("a", "python")  # the engine is idle again: spare capacity
    assert sum(pool._making.values()) == 1
    await asyncio.sleep(0.05)
    assert pool.ready("a", "python") == 1


def test_the_engine_load_counts_calls_in_flight_and_releases_them_on_failure() -> None:
    seen: list[int] = []

    def boom() -> None:
        seen.append(LOAD.busy)
        raise RuntimeError("injected")

    before = LOAD.busy
    with pytest.raises(RuntimeError):
        GATE.shared_call(boom)
    assert seen == [before + 1] and LOAD.busy == before


async def test_no_spare_is_made_when_the_host_is_short_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_min_available_memory=1 << 30)
    monkeypatch.setattr("runtime.sandbox.pool.mem_available", lambda: 100 << 20)
    assert await pool.prewarm("a", "python", 1) == 0
    assert pool.counts["no_memory"] == 1 and engine.api.made == {}


async def test_one_spare_goes_to_exactly_one_of_many_concurrent_takes() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    await pool.prewarm("a", "python", 1)
    (spare,) = pool.spares()
    got = await asyncio.gather(*(take(pool, "a", f"t{i}") for i in range(8)))
    assert got.count(spare.container_id) == 1 and got.count(None) == 7
    assert engine.api.made[spare.container_id]["name"] == f"theappapp-a-t{got.index(spare.container_id)}"


async def test_a_spare_of_one_project_is_never_taken_for_another() -> None:
    pool = make_pool(FakeEngine())
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "b", "t") is None
    assert pool.ready("a", "python") == 1


async def test_a_spare_of_an_older_image_is_dropped_with_its_siblings() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    await pool.prewarm("a", "python", 2)
    await pool.prewarm("b", "python", 1)
    engine.api.image_id = "sha256:rebuilt"
    assert await take(pool, "a", "t") is None
    assert pool.counts["stale"] == 1 and pool.size == 0
    assert engine.api.made == {}  # every old spare removed, none renamed to the task's name left behind


async def test_a_taken_name_keeps_the_spare_and_a_vanished_spare_means_cold() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    await pool.prewarm("a", "python", 1)
    (spare,) = pool.spares()
    engine.api.made["holder"] = {"name": "theappapp-a-t", "labels": {}, "image": "x", "running": True}
    assert await take(pool, "a", "t") is None  # the cold path will report the conflict
    assert pool.ready("a", "python") == 1
    del engine.api.made[spare.container_id]  # removed behind the pool's back
    assert await take(pool, "a", "u") is None
    assert pool.counts["failed"] == 1 and pool.size == 0


async def test_a_create_waits_for_a_spare_in_the_making_instead_of_duplicating_it() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.05
    pool = make_pool(engine, pool_spares_per_key=1)
    pool.refill("a", "python")  # in the background
    await asyncio.sleep(0)
    got = await asyncio.gather(take(pool, "a", "t1"), take(pool, "a", "t2"))
    assert got[0] is not None and got[1] is None  # one in the making: one waiter, the other goes cold
    assert pool.counts["waited"] == 1


async def test_drop_also_removes_the_projects_spares_still_being_made() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.05
    pool = make_pool(engine, pool_spares_per_key=1)
    pool.refill("a", "python")  # in the background, as after a task of project a ended
    pool.refill("b", "python")
    await asyncio.sleep(0.01)
    assert await pool.drop("a") == 1
    for _ in range(200):  # b's spare may still be in the making: it is not dropped, it arrives
        if pool.ready("b", "python"):
            break
        await asyncio.sleep(0.01)
    assert pool.ready("a", "python") == 0 and pool.ready("b", "python") == 1
    assert [c["labels"][labels.PROJECT] for c in engine.api.made.values()] == ["b"]


async def test_a_prewarm_cancelled_before_its_makers_ran_gives_their_reservations_back() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.05
    pool = make_pool(engine)
    prewarm = asyncio.create_task(pool.prewarm("a", "python", 2))
    await asyncio.sleep(0)  # reserved, makers not yet running
    prewarm.cancel()
    with pytest.raises(asyncio.CancelledError):
        await prewarm
    assert pool._making[("a", "python")] == 0
    assert await asyncio.wait_for(pool.drop("a"), 5) == 0  # nothing phantom to wait for


async def test_no_spare_is_started_for_a_project_while_it_is_being_dropped() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.05
    pool = make_pool(engine, pool_spares_per_key=1)
    pool.refill("a", "python")
    await asyncio.sleep(0.01)
    dropping = asyncio.create_task(pool.drop("a"))
    await asyncio.sleep(0.01)
    pool.refill("a", "python")  # a task's command finished meanwhile: no new spare while dropping
    assert await asyncio.wait_for(dropping, 5) == 1
    assert pool.ready("a", "python") == 0 and engine.api.made == {}


async def test_a_failed_spare_creation_releases_its_waiter_and_counts() -> None:
    engine = FakeEngine()
    engine.api.create_delay = 0.02
    pool = make_pool(engine, pool_spares_per_key=1)
    engine.api.fail_create = True
    pool.refill("a", "python")
    await asyncio.sleep(0)
    assert await take(pool, "a", "t") is None
    assert pool.counts["failed"] == 1


async def test_idle_spares_expire() -> None:
    engine = FakeEngine()
    pool = make_pool(engine, pool_idle_ttl=0.1)
    await pool.prewarm("a", "python", 2)
    await asyncio.sleep(0.3)  # the reaper wakes at the oldest spare's deadline
    assert pool.size == 0 and pool.counts["expired"] == 2 and engine.api.made == {}


async def test_shutdown_removes_spares_and_sweeps_leaked_ones_but_not_renamed_ones() -> None:
    engine = FakeEngine()
    pool = make_pool(engine)
    await pool.prewarm("a", "python", 2)
    served = await take(pool, "a", "t")
    assert served is not None
    leaked = {"name": SPARE_PREFIX + "leaked", "labels": pool.spare_labels("a", "python", time.time()),
              "image": "x", "running": True}
    engine.api.made["leaked"] = leaked  # a creation cut off before the pool recorded it
    await pool.shutdown()
    assert list(engine.api.made) == [served]  # a task's container is the manager's to destroy
    assert await pool.prewarm("a", "python", 1) == 0  # closed


def test_the_gate_keeps_a_rename_apart_from_starts_and_removals() -> None:
    gate = EndpointGate()
    events: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def slow_start() -> None:
        events.append("start begins")
        started.set()
        release.wait(2)
        events.append("start ends")

    t1 = threading.Thread(target=gate.shared_call, args=(slow_start,))
    t1.start()
    started.wait(2)
    t2 = threading.Thread(target=gate.exclusive_call, args=(lambda: events.append("rename"),))
    t2.start()
    time.sleep(0.05)
    t3 = threading.Thread(target=gate.shared_call, args=(lambda: events.append("later start"),))
    t3.start()
    time.sleep(0.05)
    assert events == ["start begins"]  # the rename waits for the start, the later start for the rename
    release.set()
    for t in (t1, t2, t3):
        t.join(2)
    assert events == ["start begins", "start ends", "rename", "later start"]


def test_pool_settings_come_from_the_environment_and_are_checked() -> None:
    env = {"THEAPPAPP_POOL_ENABLED": "false", "THEAPPAPP_POOL_SPARES_PER_KEY": "2",
           "THEAPPAPP_POOL_IDLE_TTL": "30", "THEAPPAPP_INSTALLATION_ID": "unit"}
    config = RuntimeConfig.load(env)
    assert (config.pool_enabled, config.pool_spares_per_key, config.pool_idle_ttl) == (False, 2, 30.0)
    assert RuntimeConfig(installation_id="unit").pool_enabled is True
    with pytest.raises(SandboxError):
        RuntimeConfig(installation_id="unit", pool_max_spares=-1)
    with pytest.raises(SandboxError):
        RuntimeConfig(installation_id="unit", pool_idle_ttl=0)
    with pytest.raises(SandboxError):
        RuntimeConfig(installation_id="unit", pool_fill_max_load=-1)
    loaded = RuntimeConfig.load({"THEAPPAPP_POOL_FILL_MAX_LOAD": "3", "THEAPPAPP_INSTALLATION_ID": "unit"})
    assert loaded.pool_fill_max_load == 3
