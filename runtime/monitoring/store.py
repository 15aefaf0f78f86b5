"""The monitor's SQLite schema, its inserts, and the statistics read back from it.

Plain functions over a `sqlite3.Connection`, so the writer thread and the query side
share one definition of the tables. Percentiles use the nearest-rank method over an
index on (language, duration), so they cost two indexed lookups per language.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runtime.monitoring.failures import Failure
from runtime.sandbox.events import EgressEvent, ExecEvent, LifecycleEvent, PoolEvent

SCHEMA_VERSION = 3  # 2: pool_events; 3: egress_events (each created beside the older tables)

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    language TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration REAL NOT NULL,
    exit_code INTEGER,
    timed_out INTEGER NOT NULL,
    oom_killed INTEGER NOT NULL,
    stdout_bytes INTEGER NOT NULL,
    stderr_bytes INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT
);
CREATE INDEX IF NOT EXISTS executions_language_duration ON executions (language, duration);
CREATE INDEX IF NOT EXISTS executions_started_at ON executions (started_at);
CREATE INDEX IF NOT EXISTS executions_task ON executions (project_id, task_id);
CREATE TABLE IF NOT EXISTS lifecycle (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    task_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    language TEXT NOT NULL,
    at REAL NOT NULL,
    duration REAL NOT NULL,
    error TEXT,
    cpu_seconds REAL,
    peak_memory_bytes INTEGER,
    peak_pids INTEGER
);
CREATE INDEX IF NOT EXISTS lifecycle_task ON lifecycle (project_id, task_id);
CREATE INDEX IF NOT EXISTS lifecycle_kind_at ON lifecycle (kind, at);
CREATE TABLE IF NOT EXISTS pool_events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    language TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pool_events_at ON pool_events (at);
CREATE TABLE IF NOT EXISTS egress_events (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    at REAL NOT NULL,
    host TEXT NOT NULL,
    port INTEGER,
    method TEXT NOT NULL,
    verdict TEXT NOT NULL,
    status INTEGER,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS egress_events_at ON egress_events (at);
CREATE INDEX IF NOT EXISTS egress_events_task ON egress_events (project_id, task_id);
"""


def connect(path: str, *, timeout: float = 5.0) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes, fast commits
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"monitor database has schema {version}, newer than this code ({SCHEMA_VERSION})")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def insert(
    conn: sqlite3.Connection,
    executions: Sequence[tuple[ExecEvent, Failure]],
    lifecycle: Sequence[LifecycleEvent],
    pool: Sequence[PoolEvent] = (),
    egress: Sequence[EgressEvent] = (),
) -> None:
    """One transaction for a whole batch: one fsync-free WAL commit however many events."""
    conn.execute("BEGIN")
    try:
        conn.executemany(
            "INSERT INTO executions (task_id, project_id, language, command, started_at, duration, exit_code,"
            " timed_out, oom_killed, stdout_bytes, stderr_bytes, truncated, outcome, error_type)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.task_id, e.project_id, e.language, e.command, e.started_at, e.duration, e.exit_code,
                 int(e.timed_out), int(e.oom_killed), e.stdout_bytes, e.stderr_bytes, int(e.truncated),
                 f.outcome, f.error_type)
                for e, f in executions
            ],
        )
        conn.executemany(
            "INSERT INTO lifecycle (kind, task_id, project_id, language, at, duration, error, cpu_seconds,"
            " peak_memory_bytes, peak_pids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.kind, e.task_id, e.project_id, e.language, e.at, e.duration, e.error, e.usage.cpu_seconds,
                 e.usage.peak_memory_bytes, e.usage.peak_pids)
                for e in lifecycle
            ],
        )
        conn.executemany(
            "INSERT INTO pool_events (kind, project_id, language, at) VALUES (?, ?, ?, ?)",
            [(e.kind, e.project_id, e.language, e.at) for e in pool],
        )
        conn.executemany(
            "INSERT INTO egress_events (task_id, project_id, at, host, port, method, verdict, status, bytes_in,"
            " bytes_out, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.task_id, e.project_id, e.at, e.host, e.port, e.method, e.verdict, e.status, e.bytes_in,
              e.bytes_out, e.reason) for e in egress],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- query results -------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRate:
    language: str
    executions: int
    failures: int  # every outcome but ok
    rate: float  # failures / executions


@dataclass(frozen=True)
class ErrorPattern:
    language: str
    outcome: str
    error_type: str | None
    count: int
    last_seen: float  # unix seconds


@dataclass(frozen=True)
class DurationStats:
    language: str
    count: int
    p50: float
    p95: float
    max: float
    mean: float


@dataclass(frozen=True)
class LifecycleStats:
    kind: str
    count: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True)
class TaskUsage:
    project_id: str
    task_id: str
    language: str
    created_at: float | None
    destroyed_at: float | None
    executions: int
    exec_seconds: float
    failures: int
    cpu_seconds: float | None  # from the cgroup/stats at destroy
    peak_memory_bytes: int | None
    peak_pids: int | None


@dataclass(frozen=True)
class ExecutionRecord:
    task_id: str
    project_id: str
    language: str
    command: str
    started_at: float
    duration: float
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    outcome: str
    error_type: str | None


def _where(clauses: Iterable[tuple[str, object | None]]) -> tuple[str, list[object]]:
    used = [(sql, value) for sql, value in clauses if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


def _nearest_rank(count: int, percentile: float) -> int:
    return max(0, math.ceil(percentile / 100 * count) - 1)


def error_rates(conn: sqlite3.Connection, since: float | None) -> list[ErrorRate]:
    where, args = _where([("started_at >= ?", since)])
    rows = conn.execute(
        "SELECT language, COUNT(*), SUM(outcome != 'ok') FROM executions"
        f"{where} GROUP BY language ORDER BY language",
        args,
    ).fetchall()
    return [ErrorRate(lang, n, int(f), f / n) for lang, n, f in rows]


def error_patterns(
    conn: sqlite3.Connection, language: str | None, since: float | None, limit: int
) -> list[ErrorPattern]:
    where, args = _where([("outcome != ?", "ok"), ("language = ?", language), ("started_at >= ?", since)])
    rows = conn.execute(
        "SELECT language, outcome, error_type, COUNT(*) AS n, MAX(started_at) FROM executions"
        f"{where} GROUP BY language, outcome, error_type ORDER BY n DESC, language, outcome LIMIT ?",
        [*args, limit],
    ).fetchall()
    return [ErrorPattern(*row) for row in rows]


def duration_stats(conn: sqlite3.Connection, language: str | None, since: float | None) -> list[DurationStats]:
    where, args = _where([("language = ?", language), ("started_at >= ?", since)])
    groups = conn.execute(
        f"SELECT language, COUNT(*), MAX(duration), AVG(duration) FROM executions{where}"
        " GROUP BY language ORDER BY language",
        args,
    ).fetchall()
    stats = []
    for lang, count, longest, mean in groups:
        where_l, args_l = _where([("language = ?", lang), ("started_at >= ?", since)])
        pick = f"SELECT duration FROM executions{where_l} ORDER BY duration LIMIT 1 OFFSET ?"
        p50 = conn.execute(pick, [*args_l, _nearest_rank(count, 50)]).fetchone()[0]
        p95 = conn.execute(pick, [*args_l, _nearest_rank(count, 95)]).fetchone()[0]
        stats.append(DurationStats(lang, count, p50, p95, longest, mean))
    return stats


def lifecycle_stats(conn: sqlite3.Connection, since: float | None) -> list[LifecycleStats]:
    where, args = _where([("at >= ?", since)])
    groups = conn.execute(
        f"SELECT kind, COUNT(*), MAX(duration) FROM lifecycle{where} GROUP BY kind ORDER BY kind", args
    ).fetchall()
    stats = []
    for kind, count, longest in groups:
        where_k, args_k = _where([("kind = ?", kind), ("at >= ?", since)])
        pick = f"SELECT duration FROM lifecycle{where_k} ORDER BY duration LIMIT 1 OFFSET ?"
        p50 = conn.execute(pick, [*args_k, _nearest_rank(count, 50)]).fetchone()[0]
        p95 = conn.execute(pick, [*args_k, _nearest_rank(count, 95)]).fetchone()[0]
        stats.append(LifecycleStats(kind, count, p50, p95, longest))
    return stats


_TASK_USAGE = """
WITH keys AS (
    SELECT project_id, task_id FROM lifecycle UNION SELECT project_id, task_id FROM executions
),
lc AS (
    SELECT project_id, task_id, MAX(language) AS language,
           MIN(CASE WHEN kind = 'create' THEN at END) AS created_at,
           MAX(CASE WHEN kind = 'destroy' THEN at END) AS destroyed_at,
           MAX(cpu_seconds) AS cpu, MAX(peak_memory_bytes) AS mem, MAX(peak_pids) AS pids,
           MAX(at) AS last_at
    FROM lifecycle GROUP BY project_id, task_id
),
ex AS (
    SELECT project_id, task_id, MAX(language) AS language, COUNT(*) AS n, SUM(duration) AS secs,
           SUM(outcome != 'ok') AS fails, MAX(started_at + duration) AS last_at
    FROM executions GROUP BY project_id, task_id
)
SELECT k.project_id, k.task_id, COALESCE(lc.language, ex.language), lc.created_at, lc.destroyed_at,
       COALESCE(ex.n, 0), COALESCE(ex.secs, 0.0), COALESCE(ex.fails, 0), lc.cpu, lc.mem, lc.pids
FROM keys AS k
LEFT JOIN lc ON lc.project_id = k.project_id AND lc.task_id = k.task_id
LEFT JOIN ex ON ex.project_id = k.project_id AND ex.task_id = k.task_id
{where}
ORDER BY MAX(COALESCE(lc.last_at, 0), COALESCE(ex.last_at, 0)) DESC
LIMIT ?
"""


def task_usage(
    conn: sqlite3.Connection, task_id: str | None, project_id: str | None, limit: int
) -> list[TaskUsage]:
    where, args = _where([("k.task_id = ?", task_id), ("k.project_id = ?", project_id)])
    rows = conn.execute(_TASK_USAGE.format(where=where), [*args, limit]).fetchall()
    return [TaskUsage(*row) for row in rows]


def recent_executions(
    conn: sqlite3.Connection, language: str | None, task_id: str | None, failed_only: bool, limit: int
) -> list[ExecutionRecord]:
    where, args = _where(
        [("language = ?", language), ("task_id = ?", task_id), ("outcome != ?", "ok" if failed_only else None)]
    )
    rows = conn.execute(
        "SELECT task_id, project_id, language, command, started_at, duration, exit_code, timed_out, oom_killed,"
        f" stdout_bytes, stderr_bytes, truncated, outcome, error_type FROM executions{where}"
        " ORDER BY started_at DESC, id DESC LIMIT ?",
        [*args, limit],
    ).fetchall()
    return [
        ExecutionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]), r[9], r[10], bool(r[11]),
                        r[12], r[13])
        for r in rows
    ]


def prune(conn: sqlite3.Connection, before: float) -> int:
    conn.execute("BEGIN")
    removed = conn.execute("DELETE FROM executions WHERE started_at < ?", [before]).rowcount
    removed += conn.execute("DELETE FROM lifecycle WHERE at < ?", [before]).rowcount
    removed += conn.execute("DELETE FROM egress_events WHERE at < ?", [before]).rowcount
    conn.execute("COMMIT")
    return removed


def pool_counts(conn: sqlite3.Connection, since: float | None) -> list[tuple[str, int]]:
    """Warm-pool decisions by kind (hit, miss, made, evicted, busy, ...), most frequent first."""
    where, args = _where([("at >= ?", since)])
    rows = conn.execute(f"SELECT kind, COUNT(*) FROM pool_events{where} GROUP BY kind ORDER BY 2 DESC, 1", args)
    return [(str(kind), int(count)) for kind, count in rows]


@dataclass(frozen=True)
class EgressSummary:
    """Connections of allowlisted tasks to one host, by verdict."""

    host: str
    verdict: str
    connections: int
    bytes_in: int
    bytes_out: int
    last_seen: float
    reason: str  # the latest one


def egress_summary(conn: sqlite3.Connection, since: float | None, task_id: str | None = None,
                   limit: int = 50) -> list[EgressSummary]:
    """Per host and verdict, denied first, then the busiest."""
    where, args = _where([("at >= ?", since), ("task_id = ?", task_id)])
    rows = conn.execute(
        "SELECT host, verdict, COUNT(*), SUM(bytes_in), SUM(bytes_out), MAX(at),"
        " (SELECT reason FROM egress_events r WHERE r.host = e.host AND r.verdict = e.verdict ORDER BY at DESC LIMIT 1)"
        f" FROM egress_events e{where} GROUP BY host, verdict ORDER BY verdict = 'allowed', 3 DESC, host LIMIT ?",
        [*args, limit],
    )
    return [EgressSummary(str(h), str(v), int(n), int(i or 0), int(o or 0), float(t), str(r or ""))
            for h, v, n, i, o, t, r in rows]


def egress_events(conn: sqlite3.Connection, task_id: str | None = None, limit: int = 100) -> list[EgressEvent]:
    """The latest connections (of one task), newest first."""
    where, args = _where([("task_id = ?", task_id)])
    rows = conn.execute(
        "SELECT task_id, project_id, at, host, port, method, verdict, status, bytes_in, bytes_out, reason"
        f" FROM egress_events{where} ORDER BY at DESC LIMIT ?", [*args, limit])
    return [EgressEvent(*row) for row in rows]
