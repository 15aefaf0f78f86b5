"""The Docker backend's engine-wide bookkeeping: the load it reports, and the rename gate."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.backends.docker.gate import GATE, LOAD, EndpointGate


def test_the_engine_load_counts_calls_in_flight_and_releases_them_on_failure() -> None:
    seen: list[int] = []

    def boom() -> None:
        seen.append(LOAD.busy)
        raise RuntimeError("injected")

    before = LOAD.busy
    with pytest.raises(RuntimeError):
        GATE.shared_call(boom)
    assert seen == [before + 1] and LOAD.busy == before


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
