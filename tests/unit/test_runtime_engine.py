"""Engine calls: deadlines, abandoned results cleaned up, and a dead engine named clearly."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import pytest

from runtime.backends.docker.engine import Engine
from runtime.errors import EngineUnavailable


async def test_a_call_past_its_deadline_raises_and_its_late_result_goes_to_on_abandon() -> None:
    engine = Engine(None, api_timeout=5)
    landed = threading.Event()
    abandoned: list[str] = []

    def slow() -> str:
        time.sleep(0.3)
        return "container-id"

    def cleanup(result: str) -> None:
        abandoned.append(result)
        landed.set()

    with pytest.raises(EngineUnavailable, match="within"):
        await engine.call(slow, deadline=0.05, on_abandon=cleanup)
    assert await asyncio.get_running_loop().run_in_executor(None, landed.wait, 2)
    assert abandoned == ["container-id"]
    engine.close()


async def test_a_cancelled_call_hands_its_result_to_on_abandon_and_a_finished_one_does_not() -> None:
    engine = Engine(None, api_timeout=5)
    abandoned: list[int] = []
    landed = threading.Event()

    def cleanup(result: int) -> None:
        abandoned.append(result)
        landed.set()

    assert await engine.call(lambda: 1, on_abandon=cleanup) == 1
    task = asyncio.create_task(engine.call(lambda: time.sleep(0.2) or 2, on_abandon=cleanup))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await asyncio.get_running_loop().run_in_executor(None, landed.wait, 2)
    assert abandoned == [2]
    engine.close()


async def test_dead_engine_is_engine_unavailable_naming_where(tmp_path: Path) -> None:
    where = f"unix://{tmp_path}/absent.sock"
    engine = Engine(where, api_timeout=5)
    with pytest.raises(EngineUnavailable, match=r"absent\.sock"):
        await engine.connect()
    assert engine.endpoint() == ("unix", f"{tmp_path}/absent.sock")
    engine.close()
