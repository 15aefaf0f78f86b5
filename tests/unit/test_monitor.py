"""SandboxMonitor on real SQLite files: persistence, statistics, and never failing the caller."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runtime.monitoring.metrics import PrometheusMetrics
from runtime.monitoring.monitor import MONITOR_DB_ENV, SandboxMonitor, default_monitor_path
from runtime.registry import DEFAULT_REGISTRY_PATH, REGISTRY_ENV, parse_registry
from runtime.sandbox.events import ExecEvent, LifecycleEvent, Observer, ResourceUsage

T0 = 1_800_000_000.0
PY_ZERO_DIV = (
    "Traceback (most recent call last):\n  File \"m.py\", line 1, in <module>\nZeroDivisionError: division by zero\n"
)
NODE_TYPE_ERR = "/tmp/m.js:1\n\nTypeError: x is not a function\n    at Object.<anonymous> (/tmp/m.js:1:1)\n"


def exec_event(
    language: str = "python",
    *,
    task: str = "t1",
    project: str = "p1",
    duration: float = 0.1,
    exit_code: int | None = 0,
    stderr: str = "",
    at: float = T0,
    timed_out: bool = False,
    oom: bool = False,
) -> ExecEvent:
    return ExecEvent(task, project, language, "run it", at, duration, exit_code, timed_out, oom, 5, len(stderr),
                     False, stderr)


def life(kind: str, *, task: str = "t1", at: float = T0, duration: float = 0.5, **usage: float) -> LifecycleEvent:
    return LifecycleEvent(kind, task, "p1", "python", at, duration, usage=ResourceUsage(**usage))  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "monitor.sqlite3"


@pytest.fixture
def monitor(db: Path) -> Iterator[SandboxMonitor]:
    m = SandboxMonitor(db, metrics=False)
    yield m
    m.close()


def test_is_an_observer(monitor: SandboxMonitor) -> None:
    observer: Observer = monitor
    observer.on_exec(exec_event())
    observer.on_lifecycle(life("create"))
    assert monitor.flush()
    assert len(monitor.recent_executions()) == 1


def test_records_survive_a_restart(db: Path) -> None:
    first = SandboxMonitor(db, metrics=False)
    first.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV))
    first.on_lifecycle(life("destroy", cpu_seconds=1.25, peak_memory_bytes=1 << 20, peak_pids=4))
    first.close()
    second = SandboxMonitor(db, metrics=False)
    try:
        (record,) = second.recent_executions()
        assert (record.outcome, record.error_type) == ("runtime_error", "ZeroDivisionError")
        (usage,) = second.resource_usage()
        assert (usage.cpu_seconds, usage.peak_memory_bytes, usage.peak_pids) == (1.25, 1 << 20, 4)
    finally:
        second.close()


def test_database_is_in_wal_mode(monitor: SandboxMonitor, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MONITOR_DB_ENV, str(tmp_path / "env" / "m.sqlite3"))
    m = SandboxMonitor(metrics=False)
    try:
        assert m.path == tmp_path / "env" / "m.sqlite3" and m.path.exists()
    finally:
        m.close()


def test_default_path_under_the_user_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MONITOR_DB_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_monitor_path() == tmp_path / ".local/share/theappapp-sandbox/monitor.sqlite3"


def test_error_rates_per_language(monitor: SandboxMonitor) -> None:
    for i in range(10):
        monitor.on_exec(exec_event("python", exit_code=1 if i < 3 else 0, stderr=PY_ZERO_DIV if i < 3 else ""))
    for i in range(4):
        monitor.on_exec(exec_event("node", exit_code=1 if i == 0 else 0, stderr=NODE_TYPE_ERR if i == 0 else ""))
    monitor.on_exec(exec_event("go", timed_out=True, exit_code=None))
    rates = {r.language: (r.executions, r.failures, r.rate) for r in monitor.error_rates()}
    assert rates == {"python": (10, 3, 0.3), "node": (4, 1, 0.25), "go": (1, 1, 1.0)}


def test_error_rates_since(monitor: SandboxMonitor) -> None:
    monitor.on_exec(exec_event(exit_code=1, at=T0))
    monitor.on_exec(exec_event(exit_code=0, at=T0 + 100))
    assert [(r.executions, r.failures) for r in monitor.error_rates(since=T0 + 50)] == [(1, 0)]


def test_error_patterns_count_classes_most_frequent_first(monitor: SandboxMonitor) -> None:
    for _ in range(3):
        monitor.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV))
    monitor.on_exec(exec_event(exit_code=137, oom=True))
    monitor.on_exec(exec_event("node", exit_code=1, stderr=NODE_TYPE_ERR))
    monitor.on_exec(exec_event())  # ok: not a pattern
    patterns = [(p.language, p.outcome, p.error_type, p.count) for p in monitor.error_patterns()]
    assert patterns[0] == ("python", "runtime_error", "ZeroDivisionError", 3)
    assert sorted(patterns[1:]) == [("node", "runtime_error", "TypeError", 1), ("python", "oom", "oom-killed", 1)]
    assert [p.error_type for p in monitor.error_patterns(language="node")] == ["TypeError"]


def nearest_rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def test_duration_stats_match_a_direct_computation(monitor: SandboxMonitor) -> None:
    python = [((i * 37) % 101) / 10 for i in range(1, 101)]  # 100 shuffled values
    node = [0.3, 0.1, 0.2]
    for d in python:
        monitor.on_exec(exec_event("python", duration=d))
    for d in node:
        monitor.on_exec(exec_event("node", duration=d))
    stats = {s.language: s for s in monitor.duration_stats()}
    for lang, values in (("python", python), ("node", node)):
        s = stats[lang]
        assert s.count == len(values)
        assert s.p50 == nearest_rank(values, 50) and s.p95 == nearest_rank(values, 95)
        assert s.max == max(values) and s.mean == pytest.approx(sum(values) / len(values))
    assert (stats["node"].p50, stats["node"].p95) == (0.2, 0.3)


def test_lifecycle_stats_include_failures(monitor: SandboxMonitor) -> None:
    monitor.on_lifecycle(life("create", duration=1.0))
    monitor.on_lifecycle(life("create", duration=3.0))
    monitor.on_lifecycle(LifecycleEvent("create_failed", "t2", "p1", "python", T0, 0.2, error="image missing"))
    stats = {s.kind: (s.count, s.p50, s.max) for s in monitor.lifecycle_stats()}
    assert stats == {"create": (2, 1.0, 3.0), "create_failed": (1, 0.2, 0.2)}


def test_resource_usage_per_task(monitor: SandboxMonitor) -> None:
    monitor.on_lifecycle(life("create", task="a", at=T0))
    monitor.on_exec(exec_event(task="a", duration=1.5, at=T0 + 1))
    monitor.on_exec(exec_event(task="a", duration=0.5, exit_code=1, at=T0 + 3))
    monitor.on_lifecycle(life("destroy", task="a", at=T0 + 10, cpu_seconds=2.0, peak_memory_bytes=300, peak_pids=9))
    monitor.on_exec(exec_event(task="b", duration=0.25, at=T0 + 20))  # no lifecycle recorded for b
    usage = {u.task_id: u for u in monitor.resource_usage()}
    a, b = usage["a"], usage["b"]
    assert (a.executions, a.exec_seconds, a.failures) == (2, 2.0, 1)
    assert (a.created_at, a.destroyed_at, a.cpu_seconds, a.peak_memory_bytes, a.peak_pids) == (T0, T0 + 10, 2.0, 300, 9)
    assert (b.executions, b.cpu_seconds, b.created_at) == (1, None, None)
    assert [u.task_id for u in monitor.resource_usage()] == ["b", "a"]  # most recent first
    assert [u.task_id for u in monitor.resource_usage(task_id="a")] == ["a"]


def test_recent_executions_newest_first_and_filtered(monitor: SandboxMonitor) -> None:
    for i in range(5):
        monitor.on_exec(exec_event(at=T0 + i, exit_code=1 if i % 2 else 0))
    recent = monitor.recent_executions(3)
    assert [r.started_at for r in recent] == [T0 + 4, T0 + 3, T0 + 2]
    assert [r.started_at for r in monitor.recent_executions(failed_only=True)] == [T0 + 3, T0 + 1]


def test_stderr_text_is_not_stored(monitor: SandboxMonitor, db: Path) -> None:
    monitor.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV + "secret-ish detail\n"))
    monitor.flush()
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert "secret-ish detail" not in dump


def test_a_broken_database_never_reaches_the_caller(monitor: SandboxMonitor, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE executions")
    monitor.on_exec(exec_event())  # must not raise
    assert monitor.flush()
    assert monitor.write_errors == 1


def test_full_queue_drops_and_counts(db: Path) -> None:
    m = SandboxMonitor(db, metrics=False, max_queue=0)
    try:
        for _ in range(3):
            m.on_exec(exec_event())
        assert m.dropped == 3
    finally:
        m.close()


def test_close_writes_what_is_queued_and_ignores_later_events(db: Path) -> None:
    m = SandboxMonitor(db, metrics=False)
    for _ in range(200):
        m.on_exec(exec_event())
    m.close()
    m.close()  # idempotent
    m.on_exec(exec_event())
    assert len(m.recent_executions(1000)) == 200


def test_two_monitors_share_one_file(db: Path) -> None:
    a, b = SandboxMonitor(db, metrics=False), SandboxMonitor(db, metrics=False)
    try:
        writers = [
            threading.Thread(target=lambda m=m: [m.on_exec(exec_event()) for _ in range(500)]) for m in (a, b)
        ]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        a.flush()
        assert b.error_rates()[0].executions == 1000
    finally:
        a.close()
        b.close()


def test_prune_removes_old_records(monitor: SandboxMonitor) -> None:
    now = time.time()
    monitor.on_exec(exec_event(at=now - 10 * 86400))
    monitor.on_exec(exec_event(at=now))
    monitor.on_lifecycle(life("create", at=now - 10 * 86400))
    assert monitor.prune(older_than=86400) == 2
    assert len(monitor.recent_executions()) == 1


def test_newer_schema_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        SandboxMonitor(db, metrics=False)


def test_prometheus_metrics_follow_the_records(db: Path) -> None:
    if not PrometheusMetrics.available():
        pytest.skip("prometheus-client is not installed (optional)")
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    m = SandboxMonitor(db, metrics=PrometheusMetrics(registry))
    try:
        m.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV, duration=0.2))
        m.on_exec(exec_event())
        m.on_lifecycle(life("create", duration=0.7))
        m.flush()
        value = registry.get_sample_value
        assert value("theappapp_sandbox_executions_total", {"language": "python", "outcome": "runtime_error"}) == 1
        assert value("theappapp_sandbox_executions_total", {"language": "python", "outcome": "ok"}) == 1
        assert value("theappapp_sandbox_exec_duration_seconds_count", {"language": "python"}) == 2
        assert value("theappapp_sandbox_lifecycle_events_total", {"kind": "create", "language": "python"}) == 1
    finally:
        m.close()


def test_default_metrics_are_optional(db: Path) -> None:
    m = SandboxMonitor(db)  # auto: the shared instance when installed, none otherwise, never an error
    try:
        assert (m.metrics is not None) == PrometheusMetrics.available()
    finally:
        m.close()


def test_failures_are_classified_by_the_registry_the_monitor_was_given(db: Path) -> None:
    data = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
    data["languages"]["python"]["failures"] = [{"regex": "^(ZeroDivisionError)", "outcome": "oom"}]
    with SandboxMonitor(db, metrics=False, registry=parse_registry(data)) as m:
        m.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV))
        assert [(p.outcome, p.error_type) for p in m.error_patterns()] == [("oom", "ZeroDivisionError")]


def test_an_unreadable_registry_falls_back_to_the_generic_checks(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "languages.yaml"
    broken.write_text("schema_version: [unclosed\n")
    monkeypatch.setenv(REGISTRY_ENV, str(broken))
    with SandboxMonitor(db, metrics=False) as m:
        m.on_exec(exec_event(exit_code=1, stderr=PY_ZERO_DIV))
        m.on_exec(exec_event(exit_code=None, timed_out=True))
        patterns = {(p.outcome, p.error_type) for p in m.error_patterns()}
    assert patterns == {("exit_nonzero", "exit status 1"), ("timeout", None)}


def test_pool_decisions_are_recorded_and_counted_by_kind(tmp_path: Path) -> None:
    from runtime.sandbox.events import PoolEvent

    with SandboxMonitor(tmp_path / "p.sqlite3", metrics=False) as monitor:
        for kind in ("hit", "hit", "miss", "busy", "evicted", "hit"):
            monitor.on_pool(PoolEvent(kind, "p", "python", T0))
        assert monitor.pool_counts() == [("hit", 3), ("busy", 1), ("evicted", 1), ("miss", 1)]
        assert monitor.pool_counts(since=T0 + 1) == []
