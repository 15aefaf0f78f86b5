"""Percentiles and the figure line every benchmark prints."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


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
