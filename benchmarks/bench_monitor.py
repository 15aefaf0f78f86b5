"""What recording costs the caller: SandboxMonitor.on_exec on the manager's thread.

    python benchmarks/bench_monitor.py [--events 20000] [--execs 300]

1. Enqueue cost: on_exec calls back to back (the writer thread working concurrently),
   per call, against a no-op observer.
2. Exec-shaped loop: each iteration waits 2 ms with the GIL released (a stand-in for a
   docker exec round trip, which takes milliseconds) then records one event with a
   realistic stderr tail; wall time per iteration with and without the monitor.
3. Writer throughput: events per second written to SQLite (classification included).
Not a timed test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from runtime.monitoring.monitor import SandboxMonitor
from runtime.sandbox.events import ExecEvent

TAIL = (
    "Traceback (most recent call last):\n  File \"/workspace/main.py\", line 12, in <module>\n"
    "    main()\n  File \"/workspace/main.py\", line 9, in main\n    return 1 / n\n"
    "ZeroDivisionError: division by zero\n"
)


def event(i: int) -> ExecEvent:
    failed = i % 5 == 0
    return ExecEvent(f"task-{i % 50}", "proj", "python", "python3 main.py", time.time(), 0.05 + (i % 7) / 100,
                     1 if failed else 0, False, False, 120, len(TAIL) if failed else 0, False, TAIL if failed else "")


class NoOp:
    def on_exec(self, event: ExecEvent) -> None:
        pass


def per_call(observer: SandboxMonitor | NoOp, events: list[ExecEvent]) -> float:
    start = time.perf_counter()
    for e in events:
        observer.on_exec(e)
    return (time.perf_counter() - start) / len(events) * 1e6


def exec_loop(observer: SandboxMonitor | NoOp, events: list[ExecEvent]) -> list[float]:
    times = []
    for e in events:
        start = time.perf_counter()
        time.sleep(0.002)
        observer.on_exec(e)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--execs", type=int, default=300)
    args = parser.parse_args()
    events = [event(i) for i in range(args.events)]
    with tempfile.TemporaryDirectory() as tmp:
        monitor = SandboxMonitor(Path(tmp) / "bench.sqlite3", metrics=False)
        noop_us = per_call(NoOp(), events)
        mon_us = per_call(monitor, events)
        start = time.perf_counter()
        monitor.flush(timeout=120)
        drain = time.perf_counter() - start
        print(f"1. on_exec, {args.events} back to back: {mon_us:.2f} us/call (no-op observer {noop_us:.2f} us/call)")

        loop_events = events[: args.execs]
        base = exec_loop(NoOp(), loop_events)
        with_monitor = exec_loop(monitor, loop_events)
        monitor.flush()
        b50, m50 = statistics.median(base) * 1e3, statistics.median(with_monitor) * 1e3
        b_mean, m_mean = statistics.fmean(base) * 1e3, statistics.fmean(with_monitor) * 1e3
        print(f"2. exec-shaped loop ({args.execs} x 2 ms): median {m50:.3f} ms vs {b50:.3f} ms without "
              f"(+{(m50 - b50) * 1e3:.1f} us); mean {m_mean:.3f} vs {b_mean:.3f} ms "
              f"(+{(m_mean - b_mean) * 1e3:.1f} us)")

        fresh = SandboxMonitor(Path(tmp) / "throughput.sqlite3", metrics=False)
        start = time.perf_counter()
        for e in events:
            fresh.on_exec(e)
        fresh.flush(timeout=120)
        elapsed = time.perf_counter() - start
        print(f"3. writer: {args.events} events enqueued and written in {elapsed:.2f} s = "
              f"{args.events / elapsed:,.0f} events/s (drain after burst 1: {drain:.2f} s)")
        print(f"   dropped {monitor.dropped + fresh.dropped}, write errors {monitor.write_errors + fresh.write_errors}")
        monitor.close()
        fresh.close()


if __name__ == "__main__":
    main()
