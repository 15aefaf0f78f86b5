"""WarmPool logic against the in-memory backend: caps, memory, freshness, hand-over races, TTL, shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import EngineError, SandboxError
from runtime.registry import get_registry
from runtime.sandbox.demand import KeyDemand
from runtime.sandbox.owner import Owner
from runtime.sandbox.pool import LEASE_SECONDS, REPLACEMENT_DELAY, SPARE, SPARE_PREFIX, WarmPool, mem_available
from runtime.sandbox.spec import ContainerSpec, build_spec
from tests.unit.fake_backend import FakeBackend


def make_pool(backend: FakeBackend, **settings: Any) -> WarmPool:
    config = RuntimeConfig.load(env={}, installation_id="unit", **settings)
    return WarmPool(backend, config, Owner(installation="unit"), get_registry(), "net")


def spec(name: str, values: dict[str, str]) -> ContainerSpec:
    registry = get_registry()
    config = RuntimeConfig.load(env={}, installation_id="unit")
    return build_spec(config, registry, Owner(installation="unit"), name=name, project_id="a",
                      language=registry.resolve("python"), labels=values, network="net")


IMAGE = "theappapp-python:latest"


async def take(pool: WarmPool, project: str, task: str) -> str | None:
    """The handed-over container's id once its rename is done, or None (cold)."""
    handover = await pool.take(project, "python", image=IMAGE, network="net", name=f"theappapp-{project}-{task}")
    if handover is None:
        return None
    await handover.renamed
    return handover.container_id


def test_mem_available_reads_meminfo_and_is_none_when_unreadable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n")
    assert mem_available(meminfo) == 2048 * 1024
    assert mem_available(tmp_path / "absent") is None


def test_spare_labels_carry_what_is_known_and_no_task() -> None:
    pool = make_pool(FakeBackend(), pool_idle_ttl=100.0, container_ttl=1000.0)
    got = pool.maker.spare_labels("proj", "python", now=5000.0)
    assert labels.TASK not in got
    assert got[labels.POOL] == SPARE and got[labels.PROJECT] == "proj" and got[labels.LANGUAGE] == "python"
    assert got[labels.MANAGED] == "true" and got[labels.INSTALLATION] == "unit"
    assert int(got[labels.EXPIRES_AT]) == 5000 + 100 + 1000  # idle wait plus a task's life


async def test_prewarm_respects_the_per_key_cap_and_evicts_at_the_global_one() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_per_key=2, pool_max_spares=3)
    assert await pool.prewarm("a", "python", 5) == 2
    assert await pool.prewarm("b", "python", 5) == 2  # room for one, and one of a's evicted
    assert (pool.ready("a", "python"), pool.counts["evicted"]) == (1, 1)
    await pool.settle()
    assert len(backend.containers) == 3
    assert all(c.name.startswith(SPARE_PREFIX) for c in backend.containers.values())


async def test_eviction_takes_speculative_keys_first_then_the_least_recently_used() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_spares=3, pool_max_per_key=1)  # one each: no pipelines here
    for project in ("old", "busy", "once"):
        assert await pool.prewarm(project, "python", 1) == 1
    for task in ("t1", "t2"):  # "busy" sees two tasks; "once" one; "old" none but was prewarmed first
        await take(pool, "busy", task)
        await pool.prewarm("busy", "python", 1)
    await take(pool, "once", "t1")
    await pool.prewarm("once", "python", 1)
    assert pool.size == 3
    assert await pool.prewarm("new", "python", 1) == 1  # one has to go: the oldest speculative one
    assert {s.key[0] for s in pool.spares()} == {"busy", "once", "new"}
    assert await pool.prewarm("newer", "python", 1) == 1
    assert {s.key[0] for s in pool.spares()} == {"busy", "new", "newer"}  # "once" next; "busy" kept


async def test_a_hand_over_starts_the_next_spare_at_once_even_when_the_engine_is_busy() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_fill_max_load=0)
    await pool.prewarm("a", "python", 1)
    backend.busy = 5  # removals and starts in flight: a speculative refill would wait
    pool.refill("b", "python")
    assert sum(pool._making.values()) == 0 and pool.counts["busy"] == 1
    assert await take(pool, "a", "t1") is not None
    await asyncio.sleep(0.05)
    assert pool.ready("a", "python") == 1  # the replacement of the spare just handed over
    assert pool.counts["busy"] == 1 and pool.ready("b", "python") == 0


def unhurried_pool(backend: FakeBackend, interval: float) -> WarmPool:
    """A pool whose key ("a", "python") saw tasks `interval` s apart; spares take 0.2 s to make."""
    pool = make_pool(backend)
    pool.demand.make_time = 0.2
    pool.demand.of(("a", "python")).interval = interval
    return pool


async def test_the_replacement_of_an_unhurried_keys_spare_waits_so_the_tasks_first_command_runs_first() -> None:
    backend = FakeBackend()
    pool = unhurried_pool(backend, interval=1.0)  # tasks 1 s apart: a spare made 0.1 s late is still in time
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "a", "t1") is not None
    await asyncio.sleep(REPLACEMENT_DELAY / 2)
    assert pool._making[("a", "python")] == 0 and pool.ready("a", "python") == 0  # not yet started
    await pool.quiesce()  # (waits for the delayed replacement too)
    assert pool.ready("a", "python") == 1 and pool.counts["made"] == 2


async def test_the_replacement_of_a_hurried_keys_spare_starts_at_once() -> None:
    backend = FakeBackend()
    pool = unhurried_pool(backend, interval=0.05)  # tasks faster than a spare is made
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "a", "t1") is not None
    # Made or on their way already (a pipeline, even: ceil(0.2 / 0.05) spares), none waiting.
    assert not pool._delayed and pool._making[("a", "python")] + pool.ready("a", "python") >= 1


async def test_a_task_arriving_while_a_replacement_waits_starts_it_and_waits_for_it() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = unhurried_pool(backend, interval=1.0)
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "a", "t1") is not None
    t0 = time.monotonic()
    assert await take(pool, "a", "t2") is not None  # the replacement started at its arrival, not after the delay
    assert time.monotonic() - t0 < REPLACEMENT_DELAY + 0.04 and pool.counts["waited"] == 1
    await pool.shutdown()


async def test_a_delayed_replacement_is_not_made_for_a_dropped_project_or_after_shutdown() -> None:
    backend = FakeBackend()
    pool = unhurried_pool(backend, interval=1.0)
    pool.demand.of(("b", "python")).interval = 1.0
    await pool.prewarm("a", "python", 1)
    await pool.prewarm("b", "python", 1)
    assert await take(pool, "a", "t1") is not None and await take(pool, "b", "t1") is not None
    await pool.drop("a")
    await asyncio.sleep(REPLACEMENT_DELAY * 1.5)
    assert pool.ready("a", "python") == 0 and pool._making[("a", "python")] == 0  # a's replacement never made
    assert pool.ready("b", "python") == 1
    assert await take(pool, "b", "t2") is not None
    waiting = pool._delayed[("b", "python")]
    await pool.shutdown()
    assert waiting.cancelled() and pool._delayed == {}  # not waited out by the shutdown
    await asyncio.sleep(REPLACEMENT_DELAY * 1.5)
    assert pool.counts["made"] == 3 and pool._making.total() == 0
    assert sorted(c.name for c in backend.containers.values()) == ["theappapp-a-t1", "theappapp-b-t1", "theappapp-b-t2"]


async def test_a_spare_handed_over_while_its_project_is_dropped_gets_no_delayed_replacement() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = unhurried_pool(backend, interval=1.0)
    pool.refill("a", "python")  # being made...
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(take(pool, "a", "t1"))  # ...and waited for by a task
    await asyncio.sleep(0)
    settle = pool.settle

    async def settle_once_handed_over() -> None:  # the hand-over completes while the drop still runs
        await asyncio.shield(waiter)
        await settle()

    pool.settle = settle_once_handed_over  # type: ignore[method-assign]
    await pool.drop("a")  # waits for the spare in the making, which goes to the task meanwhile
    assert await waiter is not None
    await asyncio.sleep(REPLACEMENT_DELAY * 1.5)
    assert pool._making.total() == 0 and pool.ready("a", "python") == 0  # nothing holds the project's volume
    assert [c.name for c in backend.containers.values()] == ["theappapp-a-t1"]


def test_a_replacement_left_waiting_when_its_event_loop_ended_is_made_by_the_next_task() -> None:
    backend = FakeBackend()
    pool = unhurried_pool(backend, interval=1.0)

    async def first() -> None:
        await pool.prewarm("a", "python", 1)
        assert await take(pool, "a", "t1") is not None  # its replacement waits, and the loop ends first

    async def second() -> None:
        # The one left waiting starts at this task's arrival, and the task waits for it: not a cold start.
        assert await take(pool, "a", "t2") is not None and pool.counts["waited"] == 1
        await pool.shutdown()

    asyncio.run(first())
    assert ("a", "python") in pool._delayed
    asyncio.run(second())


async def test_a_key_whose_tasks_outrun_the_spares_gets_a_deeper_pipeline_and_decays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_per_key=4, pool_spares_per_key=1)
    pool.demand.make_time = 0.5  # a spare takes half a second to make
    clock = [1000.0]
    monkeypatch.setattr("runtime.sandbox.demand.time.monotonic", lambda: clock[0])
    key = ("a", "python")
    assert pool.demand.target(key) == 1
    for _ in range(10):  # a task every 0.15 s
        pool.demand.arrived(key)
        clock[0] += 0.15
    assert pool.demand.target(key) == 4  # ceil(0.5 / 0.15), within the cap
    clock[0] += 60.0  # and then none for a minute
    assert pool.demand.target(key) == 1


async def test_back_to_back_tasks_count_as_fast_ones_however_long_they_waited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_per_key=4, pool_spares_per_key=1)
    pool.demand.make_time = 0.4
    clock = [1000.0]
    monkeypatch.setattr("runtime.sandbox.demand.time.monotonic", lambda: clock[0])
    waiting, patient = ("a", "python"), ("b", "python")
    for _ in range(10):  # one task every 0.5 s on each key
        pool.demand.served(waiting, pool.demand.arrived(waiting), 0.45)  # waited 0.45 s, then ran 0.05 s
        pool.demand.served(patient, pool.demand.arrived(patient), 0.005)  # found a spare; the caller paused
        clock[0] += 0.5
    assert pool.demand.target(waiting) == 4  # ceil(0.4 / 0.05) = 8, capped
    assert pool.demand.target(patient) == 1  # ceil(0.4 / 0.495)


def test_only_a_wait_that_held_back_the_next_arrival_is_left_out_of_the_gap() -> None:
    demand = KeyDemand()
    first = demand.arrived(0.0)  # a cold create of 2 s...
    second = demand.arrived(1.5)  # ...overlapped by another task that finds a spare at once
    demand.served(second, 0.01)
    demand.served(first, 2.0)
    alone = demand.arrived(2.5)
    assert demand.interval == pytest.approx(0.7 * 1.5 + 0.3 * 1.0)  # neither gap cut by a wait
    demand.served(alone, 0.1)  # served alone: its caller could ask again only after it
    failed = demand.arrived(3.0)
    assert demand.interval == pytest.approx(0.7 * 1.35 + 0.3 * 0.4)  # 3.0 - 2.5 - 0.1
    demand.served(failed, None)  # it got no container: nothing to leave out
    demand.arrived(3.5)
    assert demand.interval == pytest.approx(0.7 * 1.065 + 0.3 * 0.5)
    assert demand.in_flight == 1


async def test_a_hand_over_pipelines_deeper_only_while_few_spares_are_being_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_per_key=4, pool_max_making=3)
    await pool.prewarm("a", "python", 1)
    await pool.prewarm("b", "python", 1)
    monkeypatch.setattr(pool.demand, "target", lambda key: 4)
    hold = asyncio.Event()  # the spares being made stay in the making until the checks are done
    create = backend.create

    async def held_create(spec: ContainerSpec) -> str:
        await hold.wait()
        return await create(spec)

    monkeypatch.setattr(backend, "create", held_create)
    assert await take(pool, "a", "t1") is not None
    assert pool._making[("a", "python")] == 3  # nothing else in the making: up to pool_max_making
    assert await take(pool, "b", "t1") is not None
    assert pool._making[("b", "python")] == 1  # three already on their way: the replacement only
    hold.set()
    await pool.quiesce()
    assert pool.ready("a", "python") == 3 and pool.ready("b", "python") == 1


async def test_a_deeper_pipeline_never_evicts_another_keys_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_max_per_key=4, pool_max_spares=4)
    for project in "abcd":
        assert await pool.prewarm(project, "python", 1) == 1
    monkeypatch.setattr(pool.demand, "target", lambda key: 4)
    assert await take(pool, "a", "t1") is not None  # its replacement fits in the room it left
    await pool.quiesce()
    assert pool.counts["evicted"] == 0
    assert [pool.ready(p, "python") for p in "abcd"] == [1, 1, 1, 1]


async def test_spares_hold_a_lease_a_hand_over_gives_up_and_the_tender_renews() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 2)
    first, second = pool.spares()
    # From the agent's start (its command), then renewed: a manager killed mid-start leaves no unleased spare.
    assert [backend.specs[s.name].agent_lease for s in (first, second)] == [LEASE_SECONDS, LEASE_SECONDS]
    assert backend.leases == {first.container_id: LEASE_SECONDS, second.container_id: LEASE_SECONDS}
    handed = await take(pool, "a", "t1")
    await asyncio.sleep(0)
    assert handed is not None and backend.leases[handed] == 0  # a task outlives its manager


async def test_a_renewal_due_before_a_hand_over_but_sent_after_it_is_dropped() -> None:
    """The tender lists the spares, then renews each: one handed over in between has had its lease lifted,
    and a renewal sent after that would end the task's container once nobody renews it."""
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 2)
    spare, idle = pool.spares()
    backend.slow_renewals = asyncio.Event()
    renewals = [asyncio.ensure_future(pool.upkeep.renew(s)) for s in (spare, idle)]
    await asyncio.sleep(0)  # both under way while both spares are idle, waiting for the engine ...
    handed = await take(pool, "a", "t1")  # the oldest
    for _ in range(3):
        await asyncio.sleep(0)
    assert handed == spare.container_id and backend.leases[handed] == 0
    backend.leases.pop(idle.container_id)
    backend.slow_renewals.set()  # ... which answers after the hand-over
    await asyncio.gather(*renewals)
    assert backend.leases[handed] == 0
    assert backend.leases[idle.container_id] == LEASE_SECONDS  # the one still idle is renewed


async def test_the_interpreter_exit_removes_the_spares_a_manager_never_shut_down() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 2)
    served = await take(pool, "a", "t")
    await pool.settle()
    pool._at_exit()  # what atexit runs
    assert list(backend.containers) == [served]  # the task's container is not the pool's to remove


async def test_every_decision_is_counted_and_reported() -> None:
    backend = FakeBackend()
    seen: list[tuple[str, tuple[str, str]]] = []
    pool = make_pool(backend)
    pool.on_event = lambda kind, key: seen.append((kind, key))
    await pool.prewarm("a", "python", 1)
    await take(pool, "a", "t1")
    await take(pool, "z", "t1")
    kinds = [k for k, _ in seen]
    assert kinds[:2] == ["made", "hit"] and "miss" in kinds
    stats = pool.stats()
    assert stats["hit"] == 1 and stats["miss"] == 1 and stats["made"] >= 1


async def test_background_refills_are_capped_but_an_explicit_prewarm_is_not() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.02
    pool = make_pool(backend, pool_max_making=2, pool_spares_per_key=1)
    for project in "abcdef":
        pool.refill(project, "python")
    assert sum(pool._making.values()) == 2  # under load, spares must not crowd out task starts
    assert await pool.prewarm("g", "python", 3) == 3
    await asyncio.sleep(0.1)
    assert pool.size == 5


async def test_refills_wait_for_spare_engine_capacity_but_an_explicit_prewarm_does_not() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_fill_max_load=1)
    backend.busy = 2  # two task starts or removals in flight: the engine is busy with task work
    pool.refill("a", "python")
    assert sum(pool._making.values()) == 0 and pool.counts["busy"] == 1
    assert await take(pool, "a", "t1") is None  # nothing in the making to wait for: cold, once
    assert backend.containers == {}  # no engine work beyond what the task itself does
    assert await pool.prewarm("b", "python", 1) == 1  # the orchestrator's explicit call is not deferred
    backend.busy = 0
    pool.refill("a", "python")  # the engine is idle again: spare capacity
    assert sum(pool._making.values()) == 1
    await asyncio.sleep(0.05)
    assert pool.ready("a", "python") == 1


async def test_no_spare_is_made_when_the_host_is_short_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_min_available_memory=1 << 30)
    monkeypatch.setattr("runtime.sandbox.spare_maker.mem_available", lambda: 100 << 20)
    assert await pool.prewarm("a", "python", 1) == 0
    assert pool.counts["no_memory"] == 1 and backend.containers == {}


async def test_one_spare_goes_to_exactly_one_of_many_concurrent_takes() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 1)
    (spare,) = pool.spares()
    got = await asyncio.gather(*(take(pool, "a", f"t{i}") for i in range(8)))
    handed = [g for g in got if g is not None]
    assert got.count(spare.container_id) == 1 and len(handed) == len(set(handed))  # never one spare twice
    assert backend.containers[spare.container_id].name == f"theappapp-a-t{got.index(spare.container_id)}"


async def test_a_spare_of_one_project_is_never_taken_for_another() -> None:
    pool = make_pool(FakeBackend())
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "b", "t") is None
    assert pool.ready("a", "python") == 1


async def test_a_spare_of_an_older_image_is_dropped_with_its_siblings() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 2)
    await pool.prewarm("b", "python", 1)
    backend.rebuild("theappapp-python:latest")
    assert await take(pool, "a", "t") is None
    assert pool.counts["stale"] == 1 and pool.size == 0
    assert backend.containers == {}  # every old spare removed, none renamed to the task's name left behind


class GreetingBackend(FakeBackend):
    """Knows, as the Docker backend does once a container's agent greeted it, that its containers run;
    counts inspects; and can move the image's tag between the pool's look at it and the create."""

    def __init__(self) -> None:
        super().__init__()
        self.inspects = 0
        self.rebuild_at_create = False
        self.rebuild_and_back_at_create = False

    def known_running(self, container_id: str) -> bool:
        return container_id in self.containers

    async def inspect(self, container: str) -> Any:
        self.inspects += 1
        return await super().inspect(container)

    async def create(self, spec: ContainerSpec) -> str:
        if self.rebuild_at_create:
            self.rebuild_at_create = False
            self.rebuild(IMAGE)
        if self.rebuild_and_back_at_create:  # A -> B while the container is made from the tag, then B -> A
            self.rebuild_and_back_at_create = False
            first = self.images[IMAGE]
            self.rebuild(IMAGE)
            made = await super().create(spec)  # (a tag resolves to B here, an id to what it names)
            self.images[IMAGE] = first
            return made
        return await super().create(spec)


async def test_a_greeted_spare_is_not_inspected_and_a_tag_moved_while_it_was_made_makes_it_stale() -> None:
    backend = GreetingBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 1)
    assert await take(pool, "a", "t") is not None and backend.inspects == 0  # fresh, and the engine not asked
    backend.rebuild_at_create = True  # made from the new image, looked up as the old one: never handed out
    await pool.prewarm("b", "python", 1)
    assert await take(pool, "b", "u") is None and pool.counts["stale"] == 1


async def test_a_spare_runs_the_image_it_records_even_if_the_tag_moves_away_and_back() -> None:
    backend = GreetingBackend()
    pool = make_pool(backend)
    backend.rebuild_and_back_at_create = True
    await pool.prewarm("a", "python", 1)
    (spare,) = pool.spares()
    assert backend.containers[spare.container_id].image_id == backend.images[IMAGE].id == spare.image_id


async def test_a_vanished_spare_means_cold() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 1)
    (spare,) = pool.spares()
    del backend.containers[spare.container_id]  # removed behind the pool's back
    assert await take(pool, "a", "u") is None
    assert pool.counts["failed"] == 1 and pool.size == 0


async def test_a_create_waits_for_a_spare_in_the_making_instead_of_duplicating_it() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = make_pool(backend, pool_spares_per_key=1)
    pool.refill("a", "python")  # in the background
    await asyncio.sleep(0)
    got = await asyncio.gather(take(pool, "a", "t1"), take(pool, "a", "t2"))
    assert got[0] is not None and got[1] is None  # one in the making: one waiter, the other goes cold
    assert pool.counts["waited"] == 1


async def test_drop_also_removes_the_projects_spares_still_being_made() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = make_pool(backend, pool_spares_per_key=1)
    pool.refill("a", "python")  # in the background, as after a task of project a ended
    pool.refill("b", "python")
    await asyncio.sleep(0.01)
    assert await pool.drop("a") == 1
    for _ in range(200):  # b's spare may still be in the making: it is not dropped, it arrives
        if pool.ready("b", "python"):
            break
        await asyncio.sleep(0.01)
    assert pool.ready("a", "python") == 0 and pool.ready("b", "python") == 1
    assert [c.labels[labels.PROJECT] for c in backend.containers.values()] == ["b"]


async def test_a_prewarm_cancelled_before_its_makers_ran_gives_their_reservations_back() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = make_pool(backend)
    prewarm = asyncio.create_task(pool.prewarm("a", "python", 2))
    await asyncio.sleep(0)  # reserved, makers not yet running
    prewarm.cancel()
    with pytest.raises(asyncio.CancelledError):
        await prewarm
    assert pool._making[("a", "python")] == 0
    assert await asyncio.wait_for(pool.drop("a"), 5) == 0  # nothing phantom to wait for


async def test_no_spare_is_started_for_a_project_while_it_is_being_dropped() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.05
    pool = make_pool(backend, pool_spares_per_key=1)
    pool.refill("a", "python")
    await asyncio.sleep(0.01)
    dropping = asyncio.create_task(pool.drop("a"))
    await asyncio.sleep(0.01)
    pool.refill("a", "python")  # a task's command finished meanwhile: no new spare while dropping
    assert await asyncio.wait_for(dropping, 5) == 1
    assert pool.ready("a", "python") == 0 and backend.containers == {}


async def test_a_failed_spare_creation_releases_its_waiter_and_counts() -> None:
    backend = FakeBackend()
    backend.create_delay = 0.02
    pool = make_pool(backend, pool_spares_per_key=1)
    backend.fail_create = EngineError("injected create failure")
    pool.refill("a", "python")
    await asyncio.sleep(0)
    assert await take(pool, "a", "t") is None
    assert pool.counts["failed"] == 1


async def test_idle_spares_expire() -> None:
    backend = FakeBackend()
    pool = make_pool(backend, pool_idle_ttl=0.1)
    await pool.prewarm("a", "python", 2)
    await asyncio.sleep(0.3)  # the reaper wakes at the oldest spare's deadline
    assert pool.size == 0 and pool.counts["expired"] == 2 and backend.containers == {}


async def test_shutdown_removes_spares_and_sweeps_leaked_ones_but_not_renamed_ones() -> None:
    backend = FakeBackend()
    pool = make_pool(backend)
    await pool.prewarm("a", "python", 2)
    served = await take(pool, "a", "t")
    assert served is not None
    # A creation cut off before the pool recorded it:
    await backend.create(spec(SPARE_PREFIX + "leaked", pool.maker.spare_labels("a", "python", time.time())))
    await pool.shutdown()
    assert list(backend.containers) == [served]  # a task's container is the manager's to destroy
    assert await pool.prewarm("a", "python", 1) == 0  # closed


def test_pool_settings_come_from_the_environment_and_are_checked() -> None:
    env = {"THEAPPAPP_POOL_ENABLED": "false", "THEAPPAPP_POOL_SPARES_PER_KEY": "2",
           "THEAPPAPP_POOL_IDLE_TTL": "30", "THEAPPAPP_INSTALLATION_ID": "unit"}
    pool = RuntimeConfig.load(env).pool
    assert (pool.enabled, pool.spares_per_key, pool.idle_ttl) == (False, 2, 30.0)
    assert RuntimeConfig.load(env={}, installation_id="unit").pool.enabled is True
    for bad in ({"pool_max_spares": -1}, {"pool_idle_ttl": 0}, {"pool_fill_max_load": -1}):
        with pytest.raises(SandboxError):
            RuntimeConfig.load(env={}, installation_id="unit", **bad)
    loaded = RuntimeConfig.load({"THEAPPAPP_POOL_FILL_MAX_LOAD": "3", "THEAPPAPP_INSTALLATION_ID": "unit"})
    assert loaded.pool.fill_max_load == 3
