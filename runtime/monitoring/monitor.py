"""`SandboxMonitor`: records every execution and lifecycle event in an embedded SQLite file.

It is an `Observer` (runtime/events.py). The manager calls `on_exec`/`on_lifecycle` right
after each step, so those only put the event on a queue (about a microsecond); a background
thread classifies failures, writes batches in one transaction each, and feeds Prometheus
when prometheus-client is installed. Queries first wait for what is already queued, so a
caller reads its own writes.

    monitor = SandboxMonitor()            # $THEAPPAPP_MONITOR_DB or ~/.local/share/theappapp-sandbox/
    get_container_manager().add_observer(monitor)
    monitor.error_rates(); monitor.duration_stats(); monitor.error_patterns()
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType

from runtime.errors import RegistryError
from runtime.monitoring import store
from runtime.monitoring.failures import Failure, classify, classify_without_rules
from runtime.monitoring.metrics import PrometheusMetrics
from runtime.monitoring.store import (
    DurationStats,
    ErrorPattern,
    ErrorRate,
    ExecutionRecord,
    LifecycleStats,
    TaskUsage,
)
from runtime.registry import Registry, get_registry
from runtime.sandbox.events import DiskEvent, EgressEvent, ExecEvent, LifecycleEvent, PoolEvent

MONITOR_DB_ENV = "THEAPPAPP_MONITOR_DB"
_log = logging.getLogger(__name__)

__all__ = [
    "MONITOR_DB_ENV",
    "DurationStats",
    "ErrorPattern",
    "ErrorRate",
    "ExecutionRecord",
    "LifecycleStats",
    "SandboxMonitor",
    "TaskUsage",
    "default_monitor_path",
]


def default_monitor_path() -> Path:
    """$THEAPPAPP_MONITOR_DB, else $XDG_DATA_HOME (or ~/.local/share)/theappapp-sandbox/monitor.sqlite3."""
    explicit = os.environ.get(MONITOR_DB_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "theappapp-sandbox" / "monitor.sqlite3"


class _Barrier:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_Item = object  # ExecEvent | LifecycleEvent | _Barrier | _STOP


class SandboxMonitor:
    """Observer that stores events in SQLite (WAL) from a background thread, and answers statistics."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        metrics: PrometheusMetrics | bool | None = None,
        batch_size: int = 1000,
        max_queue: int = 100_000,
        registry: Registry | None = None,
    ) -> None:
        """`metrics`: a PrometheusMetrics, True/None for the process-wide one if prometheus-client
        is installed (None: silently without it), False for none. `registry`: whose failure rules
        classify the executions (default: `get_registry()`, looked up for each batch written)."""
        self.path = Path(path).expanduser() if path is not None else default_monitor_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = store.connect(str(self.path))  # schema errors surface here, on the caller's thread
        try:
            store.create_schema(conn)
        finally:
            conn.close()
        if metrics is None or metrics is True:
            default = PrometheusMetrics.default()
            if metrics is True and default is None:
                raise RuntimeError("metrics=True but prometheus-client is not installed")
            self.metrics: PrometheusMetrics | None = default
        else:
            self.metrics = metrics or None
        self.registry = registry
        self._last_registry: Registry | None = None
        self._registry_unreadable = False  # warned about once, until it can be read again
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.dropped = 0  # events lost because the queue was full (the writer could not keep up)
        self.write_errors = 0
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="theappapp-monitor", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- Observer ------------------------------------------------------------------------

    def on_exec(self, event: ExecEvent) -> None:
        self._put(event)

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        self._put(event)

    def on_pool(self, event: PoolEvent) -> None:
        self._put(event)

    def on_egress(self, event: EgressEvent) -> None:
        self._put(event)

    def on_disk(self, event: DiskEvent) -> None:
        """A gauge, not a record: set at once (cheap), nothing queued for the database."""
        if self.metrics is not None:
            try:
                self.metrics.record_disk(event)
            except Exception as err:
                _log.warning("monitor could not update the disk gauge: %s", err)

    def _put(self, item: _Item) -> None:
        if self._closed:
            return
        if self._queue.qsize() >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1:
                _log.warning("monitor queue full (%d events): dropping events until it drains", self.max_queue)
            return
        self._queue.put(item)

    # --- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        conn = store.connect(str(self.path))
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _rules_registry(self) -> Registry | None:
        """The registry whose failure rules classify: the one given, else `get_registry()`; if languages.yaml
        cannot be read, the last one read (or None: the generic checks only). Never stops the recording."""
        if self.registry is not None:
            return self.registry
        try:
            self._last_registry = get_registry()
        except RegistryError as err:
            if not self._registry_unreadable:
                _log.warning("monitor cannot read the registry (%s); classifying with the last one read", err)
            self._registry_unreadable = True
            return self._last_registry
        self._registry_unreadable = False
        return self._last_registry

    def _write(self, conn: sqlite3.Connection, batch: list[_Item]) -> bool:
        executions: list[tuple[ExecEvent, Failure]] = []
        lifecycle: list[LifecycleEvent] = []
        pool: list[PoolEvent] = []
        egress: list[EgressEvent] = []
        barriers: list[_Barrier] = []
        stop = False
        registry = self._rules_registry()  # once per batch: finding the file's version costs a stat
        for item in batch:
            if isinstance(item, ExecEvent):
                failure = (
                    classify(item.language, item.exit_code, item.timed_out, item.oom_killed, item.stderr_tail, registry)
                    if registry is not None
                    else classify_without_rules(item.exit_code, item.timed_out, item.oom_killed, item.stderr_tail)
                )
                executions.append((item, failure))
            elif isinstance(item, LifecycleEvent):
                lifecycle.append(item)
            elif isinstance(item, PoolEvent):
                pool.append(item)
            elif isinstance(item, EgressEvent):
                egress.append(item)
            elif isinstance(item, _Barrier):
                barriers.append(item)
            elif item is _STOP:
                stop = True
        if executions or lifecycle or pool or egress:
            try:
                store.insert(conn, executions, lifecycle, pool, egress)
            except sqlite3.Error as err:  # never take the manager down for a statistic
                self.write_errors += 1
                _log.warning("monitor could not record %d events: %s", len(executions) + len(lifecycle), err)
            if self.metrics is not None:
                try:
                    for event, failure in executions:
                        self.metrics.record_exec(event, failure)
                    for life in lifecycle:
                        self.metrics.record_lifecycle(life)
                    for decision in pool:
                        self.metrics.record_pool(decision)
                    for connection in egress:
                        self.metrics.record_egress(connection)
                except Exception as err:  # a metrics bug must not stop the recording
                    _log.warning("monitor could not update metrics: %s", err)
        for barrier in barriers:
            barrier.done.set()
        return stop

    # --- control -------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout or after close."""
        if self._closed or not self._thread.is_alive():
            return False
        barrier = _Barrier()
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        atexit.unregister(self.close)

    def __enter__(self) -> SandboxMonitor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- queries -------------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        self.flush()
        return store.connect(str(self.path))

    def error_rates(self, since: float | None = None) -> list[ErrorRate]:
        """Per language: executions, failures (any outcome but ok) and their ratio."""
        with contextlib.closing(self._read()) as conn:
            return store.error_rates(conn, since)

    def error_patterns(
        self, language: str | None = None, since: float | None = None, limit: int = 20
    ) -> list[ErrorPattern]:
        """Failure classes, most frequent first: (language, outcome, error type, count, last seen)."""
        with contextlib.closing(self._read()) as conn:
            return store.error_patterns(conn, language, since, limit)

    def duration_stats(self, language: str | None = None, since: float | None = None) -> list[DurationStats]:
        """Per language: count, p50, p95 (nearest rank), max and mean execution time in seconds."""
        with contextlib.closing(self._read()) as conn:
            return store.duration_stats(conn, language, since)

    def egress_summary(self, since: float | None = None, task_id: str | None = None) -> list[store.EgressSummary]:
        """Allowlisted tasks' connections per host and verdict (denied first)."""
        with contextlib.closing(self._read()) as conn:
            return store.egress_summary(conn, since, task_id)

    def egress_events(self, task_id: str | None = None, limit: int = 100) -> list[EgressEvent]:
        """The latest connections through the egress proxy, newest first."""
        with contextlib.closing(self._read()) as conn:
            return store.egress_events(conn, task_id, limit)

    def pool_counts(self, since: float | None = None) -> list[tuple[str, int]]:
        """Warm-pool decisions by kind: hits, misses and why (busy, cap, no_memory), evictions, ..."""
        with contextlib.closing(self._read()) as conn:
            return store.pool_counts(conn, since)

    def lifecycle_stats(self, since: float | None = None) -> list[LifecycleStats]:
        """Per lifecycle kind (create, destroy, and their failures): count and durations."""
        with contextlib.closing(self._read()) as conn:
            return store.lifecycle_stats(conn, since)

    def resource_usage(
        self, task_id: str | None = None, project_id: str | None = None, limit: int = 100
    ) -> list[TaskUsage]:
        """Per task, most recent first: executions, failures, and CPU/memory/pids collected at destroy."""
        with contextlib.closing(self._read()) as conn:
            return store.task_usage(conn, task_id, project_id, limit)

    def recent_executions(
        self, limit: int = 50, *, language: str | None = None, task_id: str | None = None, failed_only: bool = False
    ) -> list[ExecutionRecord]:
        with contextlib.closing(self._read()) as conn:
            return store.recent_executions(conn, language, task_id, failed_only, limit)

    def prune(self, older_than: float) -> int:
        """Delete records older than `older_than` seconds; returns how many went."""
        with contextlib.closing(self._read()) as conn:
            return store.prune(conn, time.time() - older_than)
