"""`theappapp-sandbox stats`: the monitor's statistics as plain tables."""

from __future__ import annotations

import time
from pathlib import Path

from runtime.monitoring.monitor import SandboxMonitor
from runtime.ops.listing import human_age, table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 1024**2:.1f} MiB"


def render(monitor: SandboxMonitor, since: float | None = None, *, now: float | None = None) -> str:
    """Every table the monitor can answer; `since` is unix seconds (None: all history)."""
    now = time.time() if now is None else now
    rates = {r.language: r for r in monitor.error_rates(since)}
    durations = {d.language: d for d in monitor.duration_stats(since=since)}
    out = [f"monitor: {monitor.path}", "", "executions per language"]
    if rates:
        out.append(table(
            ("LANGUAGE", "RUNS", "FAILED", "ERROR RATE", "P50", "P95", "MAX"),
            [(lang, r.executions, r.failures, f"{r.rate:.1%}",
              *((_ms(d.p50), _ms(d.p95), _ms(d.max)) if (d := durations.get(lang)) else ("-", "-", "-")))
             for lang, r in sorted(rates.items())],
        ))
    else:
        out.append("(none recorded)")
    lifecycle = monitor.lifecycle_stats(since)
    out += ["", "lifecycle"]
    out.append(table(("STEP", "COUNT", "P50", "P95", "MAX"),
                     [(s.kind, s.count, _ms(s.p50), _ms(s.p95), _ms(s.max)) for s in lifecycle])
               if lifecycle else "(none recorded)")
    pool = monitor.pool_counts(since)
    out += ["", "warm pool (hit: a task got a spare; miss: none ready; busy/cap/no_memory: why none was made)"]
    out.append(table(("DECISION", "COUNT"), pool) if pool else "(none recorded)")
    egress = monitor.egress_summary(since)
    out += ["", "egress of allowlisted tasks (through the proxy; denied first)"]
    out.append(table(("HOST", "VERDICT", "CONNECTIONS", "SENT", "RECEIVED", "LAST SEEN", "REASON"),
                     [(e.host, e.verdict, e.connections, e.bytes_in, e.bytes_out,
                       human_age(now - e.last_seen) + " ago", e.reason[:80]) for e in egress])
               if egress else "(none recorded)")
    patterns = monitor.error_patterns(since=since)
    out += ["", "error patterns"]
    out.append(table(("LANGUAGE", "OUTCOME", "TYPE", "COUNT", "LAST SEEN"),
                     [(p.language, p.outcome, p.error_type or "-", p.count, human_age(now - p.last_seen) + " ago")
                      for p in patterns])
               if patterns else "(no failures)")
    usage = monitor.resource_usage(limit=10)
    out += ["", "recent tasks (resources collected at destroy)"]
    out.append(table(("TASK", "PROJECT", "LANGUAGE", "RUNS", "FAILED", "CPU", "PEAK MEMORY", "PEAK PIDS"),
                     [(u.task_id, u.project_id, u.language, u.executions, u.failures,
                       "-" if u.cpu_seconds is None else f"{u.cpu_seconds:.2f} s", _mib(u.peak_memory_bytes),
                       "-" if u.peak_pids is None else u.peak_pids) for u in usage])
               if usage else "(none recorded)")
    return "\n".join(out)


def show(path: Path, since_hours: float | None) -> str:
    """The tables for the monitor file at `path` (which must exist: stats never creates one)."""
    monitor = SandboxMonitor(path, metrics=False)
    try:
        return render(monitor, None if since_hours is None else time.time() - since_hours * 3600)
    finally:
        monitor.close()
