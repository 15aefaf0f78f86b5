"""Prometheus metrics for executions and lifecycle steps, when prometheus-client is installed.

Import-safe without it: `PrometheusMetrics.available()` says whether it can be used.
Metric objects are registered once per registry, so `PrometheusMetrics.default()` is shared
by every monitor in a process; pass your own `CollectorRegistry` for isolation (tests).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, ClassVar

from runtime.monitoring.failures import Failure
from runtime.sandbox.events import DiskEvent, EgressEvent, ExecEvent, LifecycleEvent, PoolEvent

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _client() -> Any:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        return None


class PrometheusMetrics:
    _default: ClassVar[PrometheusMetrics | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: Any = None, namespace: str = "theappapp_sandbox") -> None:
        client = _client()
        if client is None:
            raise RuntimeError("prometheus-client is not installed")
        registry = registry if registry is not None else client.REGISTRY
        kw: dict[str, Any] = {"namespace": namespace, "registry": registry}
        self.executions = client.Counter(
            "executions_total", "Executions by language and outcome", ["language", "outcome"], **kw
        )
        self.exec_duration = client.Histogram(
            "exec_duration_seconds", "Execution wall time", ["language"], buckets=_DURATION_BUCKETS, **kw
        )
        self.output_bytes = client.Counter(
            "output_bytes_total", "Bytes written to stdout and stderr", ["language", "stream"], **kw
        )
        self.lifecycle = client.Counter(
            "lifecycle_events_total", "Container lifecycle steps", ["kind", "language"], **kw
        )
        self.lifecycle_duration = client.Histogram(
            "lifecycle_duration_seconds", "Time a lifecycle step took", ["kind"], buckets=_DURATION_BUCKETS, **kw
        )
        self.pool = client.Counter(
            "pool_events_total", "Warm-pool decisions: hit, miss and why, made, evicted, ...", ["kind"], **kw
        )
        self.egress = client.Counter(
            "egress_connections_total", "Allowlisted tasks' connections through the egress proxy", ["verdict"], **kw
        )
        self.disk_used = client.Gauge(
            "project_disk_used_bytes", "Bytes in a project's workspace, as of its last task", ["project"], **kw
        )
        self.disk_quota = client.Gauge(
            "project_disk_quota_bytes", "A project's disk quota (absent: none enforced)", ["project"], **kw
        )
        self.egress_bytes = client.Counter(
            "egress_bytes_total", "Bytes through the egress proxy, by direction", ["direction"], **kw
        )

    @staticmethod
    def available() -> bool:
        return _client() is not None

    @classmethod
    def default(cls) -> PrometheusMetrics | None:
        """The process-wide instance on prometheus-client's default registry; None if not installed."""
        with cls._default_lock:
            if cls._default is None and cls.available():
                cls._default = cls()
            return cls._default

    def record_exec(self, event: ExecEvent, failure: Failure) -> None:
        self.executions.labels(event.language, failure.outcome).inc()
        self.exec_duration.labels(event.language).observe(event.duration)
        self.output_bytes.labels(event.language, "stdout").inc(event.stdout_bytes)
        self.output_bytes.labels(event.language, "stderr").inc(event.stderr_bytes)

    def record_lifecycle(self, event: LifecycleEvent) -> None:
        self.lifecycle.labels(event.kind, event.language).inc()
        self.lifecycle_duration.labels(event.kind).observe(event.duration)

    def record_pool(self, event: PoolEvent) -> None:
        self.pool.labels(event.kind).inc()

    def record_egress(self, event: EgressEvent) -> None:
        self.egress.labels(event.verdict).inc()
        self.egress_bytes.labels("out").inc(event.bytes_in)  # what left the sandbox
        self.egress_bytes.labels("in").inc(event.bytes_out)

    def record_disk(self, event: DiskEvent) -> None:
        self.disk_used.labels(event.project_id).set(event.used)
        if event.quota is not None:
            self.disk_quota.labels(event.project_id).set(event.quota)
