"""The Docker backend keeps a container's removal after its rename in flight, and starts no rename after it.

Docker 20.10 leaves a container renamed during its removal as a ghost in its listing, holding the
project's volume until the daemon restarts (runtime/backends/docker/removals.py). Without an engine:
the backend's engine calls are replaced by recorders.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.backends.docker import backend as backend_module
from runtime.backends.docker.agents import Agents
from runtime.backends.docker.backend import DockerBackend
from runtime.backends.docker.engine import Engine
from runtime.config import EngineSettings
from runtime.errors import SandboxGone

CONTAINER = "c" * 64


REMOVAL_ENDS = threading.Event()  # a removal in the engine lasts until this is set


Recorded = tuple[DockerBackend, list[str], threading.Event]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    events: list[str] = []
    release = threading.Event()
    REMOVAL_ENDS.set()

    def rename(api: Any, container_id: str, name: str, *, own_endpoint: bool = True) -> None:
        events.append("rename begins")
        release.wait(5)
        events.append("rename ends")

    def remove(api: Any, container_id: str, *, own_endpoint: bool = True) -> None:
        events.append("remove")
        REMOVAL_ENDS.wait(5)

    monkeypatch.setattr("runtime.backends.docker.calls.rename", rename)
    monkeypatch.setattr(backend_module, "remove_container_sync", remove)
    backend = DockerBackend(EngineSettings(api_timeout=10), "1000:1000")
    backend.engine._client = SimpleNamespace(api=object())  # type: ignore[assignment]  # connected, to nothing
    return backend, events, release


async def _until(events: list[str], wanted: str) -> None:
    deadline = time.monotonic() + 5
    while wanted not in events:
        assert time.monotonic() < deadline, f"never saw {wanted!r}: {events}"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("removal_kind", ["in the background", "awaited"])
async def test_a_removal_waits_for_the_rename_in_flight(recorded: Recorded, removal_kind: str) -> None:
    backend, events, release = recorded
    renaming = asyncio.ensure_future(backend.rename(CONTAINER, "theappapp-p-t"))
    await _until(events, "rename begins")
    removal = (asyncio.wrap_future(backend.remove_soon(CONTAINER)) if removal_kind == "in the background"
               else asyncio.ensure_future(backend.remove(CONTAINER)))
    await asyncio.sleep(0.1)
    assert events == ["rename begins"], "the removal went ahead of the rename"
    release.set()
    await asyncio.gather(renaming, removal)
    assert events == ["rename begins", "rename ends", "remove"]


async def test_a_rename_whose_caller_stopped_waiting_is_still_waited_for(recorded: Recorded) -> None:
    backend, events, release = recorded
    renaming = asyncio.ensure_future(backend.rename(CONTAINER, "theappapp-p-t"))
    await _until(events, "rename begins")
    renaming.cancel()  # as a failed egress set-up does (creation.guarded): the engine's call goes on
    with pytest.raises(asyncio.CancelledError):
        await renaming
    removal = asyncio.wrap_future(backend.remove_soon(CONTAINER))
    await asyncio.sleep(0.1)
    assert events == ["rename begins"], "the removal went ahead of the rename still in the engine"
    release.set()
    await removal
    assert events == ["rename begins", "rename ends", "remove"]


async def test_no_rename_starts_once_the_removal_has(recorded: Recorded) -> None:
    backend, events, release = recorded
    release.set()
    REMOVAL_ENDS.clear()
    renaming = asyncio.ensure_future(backend.rename(CONTAINER, "theappapp-p-t"))  # (not started yet)
    removal = asyncio.wrap_future(backend.remove_soon(CONTAINER))
    await renaming
    await _until(events, "remove")
    REMOVAL_ENDS.set()
    await removal
    assert events == ["remove"]
    assert not backend._removals.removing(CONTAINER), "a removal that ended is not kept"
    # Once removed, the id is not kept: a later rename of it goes to the engine (which says it is gone).
    await backend.rename(CONTAINER, "theappapp-p-t")
    assert events[1:] == ["rename begins", "rename ends"]


async def test_the_channel_of_a_container_being_removed_is_not_opened_again() -> None:
    removing = {CONTAINER}
    agents = Agents(lambda container_id: container_id in removing)
    inspected: list[str] = []

    async def inspect(container_id: str) -> dict[str, Any]:
        inspected.append(container_id)
        return {}

    with pytest.raises(SandboxGone, match="being removed"):
        await agents.get(None, CONTAINER, inspect)  # type: ignore[arg-type]  # (never reached: no engine needed)
    assert inspected == []


async def test_the_backend_attaches_to_no_container_it_is_removing(recorded: Recorded) -> None:
    backend, events, _ = recorded
    REMOVAL_ENDS.clear()
    removal = asyncio.wrap_future(backend.remove_soon(CONTAINER))
    await _until(events, "remove")
    with pytest.raises(SandboxGone, match="being removed"):
        await backend._agents.get(backend.engine, CONTAINER, lambda cid: pytest.fail("inspected"))
    REMOVAL_ENDS.set()
    await removal


async def test_on_finish_runs_when_the_engine_call_ends_not_when_its_caller_stops() -> None:
    engine = Engine(None, 5)
    finished, release = threading.Event(), threading.Event()
    call = asyncio.ensure_future(engine.call(release.wait, 5, on_finish=finished.set))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not finished.is_set(), "said ended while the call still ran"
    release.set()
    assert finished.wait(2)
    engine.close()
    ended: list[bool] = []
    with pytest.raises(RuntimeError):  # a call that never starts has ended too
        await engine.call(time.sleep, 0, on_finish=lambda: ended.append(True))
    assert ended == [True]
