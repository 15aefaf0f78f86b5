"""FirstMounts: creates that would populate a new volume never overlap; later ones do."""

from __future__ import annotations

import asyncio

import pytest

from runtime.backends.docker.first_mounts import FirstMounts


async def _overlap(mounts: FirstMounts, volumes: list[list[str]]) -> int:
    """How many of the creates were inside their guard at the same time, at most."""
    inside = peak = 0

    async def create(names: list[str]) -> None:
        nonlocal inside, peak
        async with mounts.creating(names):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(create(names) for names in volumes))
    return peak


async def test_the_first_create_with_a_volume_runs_alone_whatever_the_order_of_its_volumes() -> None:
    mounts = FirstMounts()
    assert await _overlap(mounts, [["ws-a", "cache-a"], ["cache-a", "ws-a"]]) == 1


async def test_once_populated_creates_run_in_parallel() -> None:
    mounts = FirstMounts()
    await _overlap(mounts, [["ws-a"]])
    assert await _overlap(mounts, [["ws-a"], ["ws-a"], ["ws-a"]]) == 3


async def test_different_volumes_do_not_wait_for_each_other() -> None:
    assert await _overlap(FirstMounts(), [["ws-a"], ["ws-b"]]) == 2


async def test_a_failed_create_leaves_the_volume_unpopulated() -> None:
    mounts = FirstMounts()
    with pytest.raises(RuntimeError):
        async with mounts.creating(["ws-a"]):
            raise RuntimeError("the engine refused")
    assert await _overlap(mounts, [["ws-a"], ["ws-a"]]) == 1


async def test_a_removed_volume_is_populated_again_one_at_a_time() -> None:
    mounts = FirstMounts()
    await _overlap(mounts, [["ws-a"]])
    mounts.forget("ws-a")
    assert await _overlap(mounts, [["ws-a"], ["ws-a"]]) == 1
