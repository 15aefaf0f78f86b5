"""Network namespace holders (runtime/backends/docker/netns.py) with recorded engine calls: which
sandbox may join which holder, and when a holder is free, leased, or removed."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import pytest

from runtime import labels
from runtime.backends.docker.holder_shelf import LEASE_SECONDS, MAX_FREE, Holder
from runtime.backends.docker.netns import HOLDER_PREFIX, Holders, holder_key
from runtime.backends.docker.oci_runtimes import on_host_kernel
from runtime.config import RuntimeConfig
from runtime.registry import get_registry
from runtime.sandbox.owner import Owner
from runtime.sandbox.spec import ContainerSpec, build_spec

EGRESS = "theappapp-egress"


def spec(project: str, network: str = "net", name: str = "box") -> ContainerSpec:
    registry = get_registry()
    config = RuntimeConfig.load(env={}, installation_id="unit")
    owner = Owner(installation="unit")
    language = registry.resolve("python")
    values = owner.labels(task_id=name, project_id=project, language="python", ttl=60)
    return build_spec(config, registry, owner, name=name, project_id=project, language=language,
                      labels=values, network=network)


class Engine:
    """What the holders asked of the engine: containers made (by name), leases, removals."""

    def __init__(self) -> None:
        self.made: dict[str, ContainerSpec] = {}
        self.leases: list[tuple[str, float]] = []
        self.removed: list[str] = []

    async def make(self, made: ContainerSpec) -> str:
        container_id = f"id-{len(self.made)}"
        self.made[container_id] = made
        return container_id

    async def lease(self, container_id: str, seconds: float) -> bool:
        self.leases.append((container_id, seconds))
        return True

    def remove_soon(self, container_id: str) -> Future[None]:
        self.removed.append(container_id)
        done: Future[None] = Future()
        done.set_result(None)
        return done


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def holders_on(engine: Engine) -> Holders:
    return Holders(engine.make, engine.lease, engine.remove_soon, lambda: "unix:///nowhere")


async def warm(holders: Holders, project: str, network: str = "net") -> None:
    """Two sandboxes of `project` made without a holder: the second asks for one."""
    for _ in range(2):
        made = spec(project, network)
        await holders.join(made, holder_key(made, EGRESS))
    await settle()


async def one_serving(sandbox: str) -> tuple[Engine, Holders, Holder]:
    """Holders whose project "a" came back, and a holder of it serving `sandbox`."""
    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    _, holder = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert holder is not None
    holders.shelf.serving(sandbox, holder)
    return engine, holders, holder


async def test_a_project_that_comes_back_gets_a_holder_made_meanwhile_and_its_next_sandbox_joins_it() -> None:
    engine = Engine()
    holders = holders_on(engine)
    first = spec("a")
    joined, holder = await holders.join(first, holder_key(first, EGRESS))
    assert joined == first and holder is None  # nothing kept yet: not made to wait for a holder
    await settle()
    assert engine.made == {}  # a one-off task's holder would only be waste
    again = spec("a")
    assert await holders.join(again, holder_key(again, EGRESS)) == (again, None)
    await settle()
    [(made_id, made)] = engine.made.items()
    assert made.name.startswith(HOLDER_PREFIX) and made.volumes == () and made.network == "net"
    assert made.labels[labels.ROLE] == "netns" and labels.TASK not in made.labels
    assert made.labels[labels.PROJECT] == "a" and (made_id, LEASE_SECONDS) in engine.leases

    second = spec("a", name="box2")
    joined, holder = await holders.join(second, holder_key(second, EGRESS))
    assert holder is not None and holder.container_id == made_id
    assert joined.network == f"container:{made_id}"
    assert joined.labels[labels.NETNS] == made_id and joined.labels[labels.NETWORK] == "net"
    assert engine.leases[-1] == (made_id, 0)  # a task outlives its manager: its namespace too
    holders.close()


async def test_a_holder_serves_one_sandbox_at_a_time_of_its_own_project_and_network_only() -> None:
    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    other_project, other_network = spec("b"), spec("a", network="other")
    assert (await holders.join(other_project, holder_key(other_project, EGRESS)))[1] is None
    assert (await holders.join(other_network, holder_key(other_network, EGRESS)))[1] is None
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None
    holders.shelf.serving("sandbox-1", taken)
    _, again = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert again is None  # busy: the concurrent sandbox gets a namespace of its own
    holders.close()


async def test_a_holder_is_free_again_only_after_its_sandbox_was_removed_and_goes_if_that_failed() -> None:
    engine, holders, taken = await one_serving("sandbox-1")
    assert holders.leaving("sandbox-1") is taken and holders.leaving("sandbox-1") is None
    holders.left(taken, removed=True)
    await settle()
    assert engine.leases[-1] == (taken.container_id, LEASE_SECONDS)  # free: leased again
    _, again = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert again is taken
    holders.shelf.serving("sandbox-2", again)
    holders.left(holders.leaving("sandbox-2") or again, removed=False)  # the sandbox may still be in it
    await settle()
    assert engine.removed == [taken.container_id]
    assert holders.close() == []  # nothing left to remove at the end


async def test_no_holder_for_the_egress_network_resolver_options_or_a_project_less_spec() -> None:
    base = spec("a")
    assert holder_key(base, EGRESS) is not None
    assert holder_key(spec("a", network=EGRESS), EGRESS) is None  # the proxy knows a sandbox by its address
    assert holder_key(replace(base, dns_options=("timeout:1",)), EGRESS) is None
    assert holder_key(replace(base, labels={}), EGRESS) is None
    engine = Engine()
    holders = holders_on(engine)
    assert await holders.join(base, None) == (base, None)
    await settle()
    assert engine.made == {}
    holders.close()


async def test_close_hands_back_every_holder_made_for_the_caller_to_remove_the_unjoined() -> None:
    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    await warm(holders, "b")
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None
    holders.shelf.serving("sandbox-1", taken)
    assert holders.close() == sorted(engine.made)  # busy ones too: the caller checks what still joins them
    later = spec("b")
    assert await holders.join(later, holder_key(later, EGRESS)) == (later, None)  # closed: none taken


async def test_sandboxes_made_without_a_holder_ask_for_one_each_two_at_a_time_per_project() -> None:
    engine = Engine()
    release = asyncio.Event()
    started: list[str] = []

    async def slow_make(made: ContainerSpec) -> str:
        started.append(made.labels[labels.PROJECT])
        await release.wait()
        return await engine.make(made)

    holders = Holders(slow_make, engine.lease, engine.remove_soon, lambda: "unix:///nowhere")
    for _ in range(5):
        await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    for _ in range(2):
        await holders.join(spec("b"), holder_key(spec("b"), EGRESS))
    await settle()
    assert sorted(started) == ["a", "a", "b"]  # a burst in one project pays for two holders at a time
    release.set()
    await settle()
    assert len(engine.made) == 3 and holders.counts["own"] == 7
    await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    await settle()
    assert sorted(started) == ["a", "a", "b"] and holders.counts["joined"] == 1
    holders.close()


def spare_of(project: str) -> ContainerSpec:
    made = spec(project)
    return replace(made, labels={**made.labels, labels.POOL: "spare"})


def gated(engine: Engine) -> tuple[Holders, asyncio.Event, list[str]]:
    """Holders whose makes wait for the event; the names of those started."""
    release = asyncio.Event()
    started: list[str] = []

    async def slow_make(made: ContainerSpec) -> str:
        started.append(made.name)
        await release.wait()
        return await engine.make(made)

    return Holders(slow_make, engine.lease, engine.remove_soon, lambda: "unix:///nowhere"), release, started


async def test_a_spare_of_a_project_that_came_back_waits_for_the_holder_made_for_it_and_joins_it() -> None:
    engine = Engine()
    holders, release, started = gated(engine)
    first = spare_of("a")
    assert await holders.join(first, holder_key(first, EGRESS)) == (first, None)  # one-off so far: no holder
    waiting = asyncio.ensure_future(holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS)))
    await settle()
    assert len(started) == 1 and not waiting.done()  # a holder on its way, and the spare waits for it
    release.set()
    joined, holder = await asyncio.wait_for(waiting, 1)
    assert holder is not None and joined.network == f"container:{holder.container_id}"
    assert holders.counts["own"] == 1 and holders.counts["joined"] == 1
    # A task (someone is waiting for it) does not wait for a holder being made: its own namespace at once.
    release.clear()
    task = spec("a", name="task")
    assert await asyncio.wait_for(holders.join(task, holder_key(task, EGRESS)), 1) == (task, None)
    holders.close()


async def test_a_spare_waits_for_a_holder_being_made_only_so_long_and_only_one_per_holder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.backends.docker import netns

    monkeypatch.setattr(netns, "MADE_WAIT", 0.1)
    engine = Engine()
    holders, release, started = gated(engine)
    await holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS))
    spares = [asyncio.ensure_future(holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS))) for _ in range(4)]
    t0 = time.monotonic()
    await settle()
    assert sum(s.done() for s in spares) == 2  # two holders on their way: two wait, two do not
    done = await asyncio.wait_for(asyncio.gather(*spares), 1)
    assert 0.1 <= time.monotonic() - t0 < 0.5  # the two waited MADE_WAIT for the two holders being made
    assert len(started) == 2 and all(holder is None for _, holder in done)  # none came in time: own
    release.set()
    await settle()
    assert len(engine.made) == 2  # made anyway: free for the project's next sandboxes
    _, holder = await holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS))
    assert holder is not None
    holders.close()


async def test_a_task_waiting_for_a_leaving_holder_goes_before_a_spare_waiting_for_one_being_made() -> None:
    engine = Engine()
    holders, release, started = gated(engine)
    await holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS))  # (a project seen before)
    first = asyncio.ensure_future(holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS)))
    await settle()
    release.set()
    _, busy = await asyncio.wait_for(first, 1)
    assert busy is not None
    holders.shelf.serving("task-1", busy)
    release.clear()
    spare = asyncio.ensure_future(holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS)))
    await settle()
    assert len(started) == 2 and not spare.done()  # a second holder on its way, the spare waiting for it
    holders.leaving("task-1")
    task = asyncio.ensure_future(holders.join(spec("a", name="task-2"), holder_key(spec("a"), EGRESS)))
    await settle()
    assert not task.done()  # waits for the leaving holder, though a spare waits already
    holders.left(busy, removed=True)
    _, taken = await asyncio.wait_for(task, 1)
    assert taken is busy and not spare.done()  # the task got it; the spare waits for its own
    release.set()
    _, made = await asyncio.wait_for(spare, 1)
    assert made is not None and made is not busy
    holders.close()


async def test_a_spare_stops_waiting_as_soon_as_the_holder_it_waits_for_could_not_be_made() -> None:
    engine = Engine()

    async def failing_make(made: ContainerSpec) -> str:
        await asyncio.sleep(0.05)
        raise RuntimeError("no room")

    holders = Holders(failing_make, engine.lease, engine.remove_soon, lambda: "unix:///nowhere")
    await holders.join(spare_of("a"), holder_key(spare_of("a"), EGRESS))
    t0 = time.monotonic()
    second = spare_of("a")
    assert await asyncio.wait_for(holders.join(second, holder_key(second, EGRESS)), 2) == (second, None)
    assert time.monotonic() - t0 < 0.5  # not the whole MADE_WAIT
    holders.close()


async def test_no_more_than_four_holders_are_made_at_once_over_all_projects() -> None:
    engine = Engine()
    holders, release, started = gated(engine)
    for project in "abc":  # three projects at once, each back with a burst of tasks
        for _ in range(4):
            await holders.join(spec(project), holder_key(spec(project), EGRESS))
    await settle()
    assert len(started) == 4  # two for "a", two for "b", none for "c" yet
    release.set()
    await settle()
    await holders.join(spec("c"), holder_key(spec("c"), EGRESS))
    await settle()
    assert len(started) == 5  # room again: "c" gets its first
    holders.close()


async def test_past_max_free_the_holder_free_the_longest_goes() -> None:
    engine = Engine()
    holders = holders_on(engine)
    for project in range(MAX_FREE + 1):
        await warm(holders, f"p{project}")
    assert len(engine.made) == MAX_FREE + 1
    assert engine.removed == ["id-0"] and holders.counts["evicted"] == 1  # the first one made, free longest
    assert len(holders.close()) == MAX_FREE


async def test_a_holder_whose_agent_does_not_answer_its_lease_is_never_handed_out() -> None:
    engine = Engine()
    silent: set[str] = set()

    async def lease(container_id: str, seconds: float) -> bool:
        engine.leases.append((container_id, seconds))
        if container_id in silent:
            raise ConnectionResetError("agent gone")
        return container_id not in {"id-0"}  # the first holder has no agent

    holders = Holders(engine.make, lease, engine.remove_soon, lambda: "unix:///nowhere")
    await warm(holders, "a")
    assert engine.removed == ["id-0"]  # gone before anyone could take it
    assert (await holders.join(spec("a"), holder_key(spec("a"), EGRESS)))[1] is None
    await settle()
    silent.add("id-1")  # the next holder's channel breaks after it was made
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    await settle()
    assert taken is None and "id-1" in engine.removed and holders.counts["lost"] == 1
    holders.close()


async def test_create_falls_back_to_a_namespace_of_its_own_when_joining_fails() -> None:
    from runtime.backends.base import NameTaken

    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    made: list[str] = []

    async def make_once_broken(box: ContainerSpec) -> str:
        made.append(box.network)
        if box.network.startswith("container:") and len(made) == 1:
            raise RuntimeError("cannot join network of a non running container")
        return f"sandbox-{len(made)}"

    box = spec("a")
    assert await holders.create(box, holder_key(box, EGRESS), make_once_broken) == "sandbox-2"
    assert made == ["container:id-0", "net"]  # the holder tried, then the sandbox's own namespace
    await settle()
    assert "id-0" in engine.removed

    await warm(holders, "a")  # (a new holder: id-1)

    async def name_taken(box: ContainerSpec) -> str:
        raise NameTaken("in use")

    with pytest.raises(NameTaken):
        await holders.create(box, holder_key(box, EGRESS), name_taken)
    await settle()
    assert "id-1" not in engine.removed  # not the holder's doing: free again
    free = [(await holders.join(box, holder_key(box, EGRESS)))[1] for _ in range(len(engine.made) - 1)]
    assert "id-1" in {h.container_id for h in free if h is not None}
    holders.close()


async def test_a_taken_over_tasks_holder_is_this_backends_after_it_and_a_deleted_projects_holders_go() -> None:
    engine = Engine()
    holders = holders_on(engine)
    values = {labels.NETNS: "old-holder", labels.PROJECT: "a", labels.NETWORK: "net"}
    holders.adopt("old-task", values)
    released = holders.leaving("old-task")
    assert released is not None and released.container_id == "old-holder"
    holders.left(released, removed=True)
    await settle()
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None and taken.container_id == "old-holder"
    holders.shelf.serving("new-task", taken)
    await warm(holders, "b")
    holders.forget_project("b")
    assert engine.removed == ["id-0"]  # b's free holder; a's busy one stays with its task
    assert holders.close() == ["old-holder"]


async def joined_for_a_spare() -> tuple[Engine, Holders, Holder | None]:
    """Holders whose project "a" came back, and the holder a warm spare of it was given (if any)."""
    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    spare = spec("a")
    spare = replace(spare, labels={**spare.labels, labels.POOL: "spare"})
    _, holder = await holders.join(spare, holder_key(spare, EGRESS))
    return engine, holders, holder


async def test_a_spares_holder_keeps_a_lease_until_the_spares_own_follows_and_a_tasks_has_none() -> None:
    engine, holders, holder = await joined_for_a_spare()
    assert holder is not None and engine.leases[-1] == (holder.container_id, LEASE_SECONDS)
    holders.shelf.serving("spare-1", holder)
    await holders.follow("spare-1", 0)  # handed over to a task: it outlives its manager
    assert engine.leases[-1] == (holder.container_id, 0)
    holders.close()


async def test_a_spares_holder_is_renewed_while_the_spare_is_made_and_no_longer_once_the_spare_is_leased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.backends.docker import netns

    monkeypatch.setattr(netns, "RENEW_EVERY", 0.01)
    engine, holders, holder = await joined_for_a_spare()
    assert holder is not None
    sent = len(engine.leases)
    await asyncio.sleep(0.1)  # a slow create: nobody else renews it meanwhile
    renewals = [lease for lease in engine.leases[sent:] if lease == (holder.container_id, LEASE_SECONDS)]
    assert len(renewals) >= 3
    holders.shelf.serving("spare-1", holder)
    await holders.follow("spare-1", 0)
    await asyncio.sleep(0.05)
    assert engine.leases[-1] == (holder.container_id, 0)  # the last word: nothing renews it after
    holders.close()


async def test_a_deleted_projects_holder_busy_at_the_time_goes_when_freed_instead_of_serving_again() -> None:
    engine, holders, holder = await one_serving("task-1")
    holders.forget_project("a")
    holders.left(holders.leaving("task-1") or holder, removed=True)
    await settle()
    assert holder.container_id in engine.removed
    assert (await holders.join(spec("a"), holder_key(spec("a"), EGRESS)))[1] is None
    holders.close()


async def test_a_sandbox_waits_briefly_for_the_holder_its_projects_last_sandbox_is_leaving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.backends.docker import holder_waits

    engine, holders, holder = await one_serving("task-1")
    assert holders.leaving("task-1") is holder  # its removal under way
    waiting = asyncio.ensure_future(holders.join(spec("a"), holder_key(spec("a"), EGRESS)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    holders.left(holder, removed=True)  # (from an engine thread, in the backend)
    _, taken = await asyncio.wait_for(waiting, 1)
    assert taken is holder and len(engine.made) == 1  # joined, and no holder made for it

    monkeypatch.setattr(holder_waits, "LEAVING_WAIT", 0.05)
    holders.shelf.serving("task-2", holder)
    holders.leaving("task-2")  # a removal that takes long: the next sandbox gets a namespace of its own
    assert (await asyncio.wait_for(holders.join(spec("a"), holder_key(spec("a"), EGRESS)), 1))[1] is None
    holders.close()


async def test_a_burst_waits_for_a_leaving_holder_only_as_many_as_will_be_freed() -> None:
    engine = Engine()
    holders = holders_on(engine)
    await warm(holders, "a")
    key = holder_key(spec("a"), EGRESS)
    assert key is not None
    holder = holders.shelf.take_free(key)
    assert holder is not None
    while holders.shelf.take_free(key) is not None:  # (busy elsewhere: none is free)
        pass
    holders.shelf.serving("task-1", holder)
    holders.leaving("task-1")
    first = asyncio.ensure_future(holders.join(spec("a"), holder_key(spec("a"), EGRESS)))
    await asyncio.sleep(0)
    t0 = time.monotonic()
    assert (await holders.join(spec("a"), holder_key(spec("a"), EGRESS)))[1] is None  # did not wait
    assert time.monotonic() - t0 < 0.1 and not first.done()
    holders.left(holder, removed=True)
    assert (await asyncio.wait_for(first, 1))[1] is not None  # (that one, or one made meanwhile)
    holders.close()


@pytest.mark.parametrize(
    ("name", "registered", "joinable"),
    [
        ("runc", {"runc": {"path": "runc"}}, True),
        ("crun", {"crun": {"path": "/usr/bin/crun"}}, True),
        ("fast", {"fast": {"path": "/usr/local/bin/crun"}}, True),  # named by the operator: the program counts
        ("runsc", {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}, False),
        ("crun", {"crun": {"path": "/usr/bin/krun"}}, False),  # a VM behind a familiar name
        ("kata", {"kata": {"runtimeType": "io.containerd.kata.v2"}}, False),  # a shim, no path (Docker 23+)
        ("crun", {"crun": {"runtimeType": "io.containerd.kata.v2"}}, False),
        ("runc", {"runc": {"runtimeType": "io.containerd.runc.v2"}}, True),
        ("runc", {}, True),  # not listed: the name
        ("kata", {}, False),
    ],
)
def test_only_runtimes_of_host_kernel_namespaces_keep_namespaces(
    name: str, registered: dict[str, Any], joinable: bool
) -> None:
    """gVisor's netstack takes a namespace's addresses over: a kept one would lose them (netns.py)."""
    assert on_host_kernel(name, registered) is joinable
