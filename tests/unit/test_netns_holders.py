"""Network namespace holders (runtime/backends/docker/netns.py) with recorded engine calls: which
sandbox may join which holder, and when a holder is free, leased, or removed."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import replace

from runtime import labels
from runtime.backends.docker.netns import HOLDER_PREFIX, LEASE_SECONDS, Holders, holder_key
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


async def test_a_projects_first_sandbox_is_made_as_before_and_its_next_joins_the_holder_made_meanwhile() -> None:
    engine = Engine()
    holders = holders_on(engine)
    first = spec("a")
    joined, holder = await holders.join(first, holder_key(first, EGRESS))
    assert joined == first and holder is None  # nothing kept yet: not made to wait for a holder
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
    await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    await settle()
    other_project, other_network = spec("b"), spec("a", network="other")
    assert (await holders.join(other_project, holder_key(other_project, EGRESS)))[1] is None
    assert (await holders.join(other_network, holder_key(other_network, EGRESS)))[1] is None
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None
    holders.serving("sandbox-1", taken)
    _, again = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert again is None  # busy: the concurrent sandbox gets a namespace of its own
    holders.close()


async def test_a_holder_is_free_again_only_after_its_sandbox_was_removed_and_goes_if_that_failed() -> None:
    engine = Engine()
    holders = holders_on(engine)
    await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    await settle()
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None
    holders.serving("sandbox-1", taken)
    assert holders.leaving("sandbox-1") is taken and holders.leaving("sandbox-1") is None
    holders.left(taken, removed=True)
    await settle()
    assert engine.leases[-1] == (taken.container_id, LEASE_SECONDS)  # free: leased again
    _, again = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert again is taken
    holders.serving("sandbox-2", again)
    holders.left(holders.leaving("sandbox-2") or again, removed=False)  # the sandbox may still be in it
    await settle()
    assert engine.removed == [taken.container_id]
    assert holders.close() == []  # nothing left to remove at the end


async def test_no_holder_for_the_egress_network_a_set_runtime_resolver_options_or_a_project_less_spec() -> None:
    base = spec("a")
    assert holder_key(base, EGRESS) is not None
    assert holder_key(spec("a", network=EGRESS), EGRESS) is None  # the proxy knows a sandbox by its address
    assert holder_key(replace(base, runtime="runsc"), EGRESS) is None
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
    await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    await holders.join(spec("b"), holder_key(spec("b"), EGRESS))
    await settle()
    _, taken = await holders.join(spec("a"), holder_key(spec("a"), EGRESS))
    assert taken is not None
    holders.serving("sandbox-1", taken)
    assert holders.close() == sorted(engine.made)  # busy ones too: the caller checks what still joins them
    later = spec("b")
    assert await holders.join(later, holder_key(later, EGRESS)) == (later, None)  # closed: none taken
