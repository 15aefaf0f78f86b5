"""Percentiles, the figure line every benchmark prints, and removing a run's volumes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable

import docker

from runtime.backends.docker.storage import remove_files_now
from runtime.config import RuntimeConfig


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(name: str, values: list[float], width: int = 44) -> tuple[float, float]:
    """Print `name` with p50 and p90 in milliseconds (values in seconds); return both."""
    p50, p90 = pct(values, 0.5) * 1000, pct(values, 0.9) * 1000
    print(f"  {name:<{width}} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms   (n={len(values)})")
    return p50, p90


async def timed(n: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    """`n` runs of `step`, one after the other: each one's duration in seconds."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await step()
        out.append(time.perf_counter() - t0)
    return out


def remove_volumes(api: docker.APIClient, names: Iterable[str]) -> None:
    """Remove these Docker volumes and their quota filesystems: a run's projects must not stay mounted on
    the host, where each mount slows every later container's start (`bench_floor.py --only mounts`)."""
    names = list(names)
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(name, force=True)
    remove_files_now(names, RuntimeConfig.load().storage.root)
