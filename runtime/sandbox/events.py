"""What the manager reports about each execution and lifecycle step, and who may listen.

Observers (the SQLite monitor, Prometheus metrics, a test) receive these records
synchronously after the step; they must be quick and must not raise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecEvent:
    task_id: str
    project_id: str
    language: str
    command: str  # truncated by the manager to a few hundred characters
    started_at: float  # unix seconds
    duration: float  # seconds
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    stderr_tail: str = ""  # last few KiB of stderr, for error classification


@dataclass(frozen=True)
class ResourceUsage:
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    peak_pids: int | None = None


@dataclass(frozen=True)
class LifecycleEvent:
    kind: Literal["create", "destroy", "create_failed", "destroy_failed", "adopt"]
    task_id: str
    project_id: str
    language: str
    at: float  # unix seconds
    duration: float  # seconds the step took
    error: str | None = None
    usage: ResourceUsage = field(default_factory=ResourceUsage)


@dataclass(frozen=True)
class PoolEvent:
    """A warm-pool decision: hit, miss, waited, made, stale, failed, expired, evicted, surplus, or why a
    spare was not made (busy, cap, no_memory)."""

    kind: str
    project_id: str
    language: str
    at: float  # unix seconds


@dataclass(frozen=True)
class EgressEvent:
    """One connection an allowlisted task made (or tried) through the egress proxy."""

    task_id: str
    project_id: str
    at: float  # unix seconds, when the proxy logged it (a tunnel: when it closed)
    host: str
    port: int | None
    method: str  # CONNECT for HTTPS
    verdict: Literal["allowed", "denied"]
    status: int | None
    bytes_in: int  # sent by the sandbox
    bytes_out: int  # received by the sandbox
    reason: str


@dataclass(frozen=True)
class DiskEvent:
    """A project's workspace usage, read after a task of it ended (or its quota or content changed)."""

    project_id: str
    used: int  # bytes
    quota: int | None
    at: float


class Observer(Protocol):
    def on_exec(self, event: ExecEvent) -> None: ...

    def on_lifecycle(self, event: LifecycleEvent) -> None: ...


class Observers:
    """The observers of one manager; a failing observer is logged and skipped, never raised."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.members: list[Observer] = list(observers)

    def add(self, observer: Observer) -> None:
        self.members.append(observer)

    def remove(self, observer: Observer) -> None:
        self.members.remove(observer)

    def exec(self, event: ExecEvent) -> None:
        for observer in self.members:
            try:
                observer.on_exec(event)
            except Exception:
                log.exception("observer %r failed on an exec event", observer)

    def lifecycle(self, event: LifecycleEvent) -> None:
        for observer in self.members:
            try:
                observer.on_lifecycle(event)
            except Exception:
                log.exception("observer %r failed on a lifecycle event", observer)

    def pool(self, event: PoolEvent) -> None:
        """To observers that take pool events (an optional `on_pool`)."""
        self._optional("on_pool", event)

    def egress(self, event: EgressEvent) -> None:
        """To observers that take egress events (an optional `on_egress`); called from the audit thread."""
        self._optional("on_egress", event)

    def disk(self, event: DiskEvent) -> None:
        """To observers that take disk usage (an optional `on_disk`)."""
        self._optional("on_disk", event)

    def _optional(self, method: str, event: object) -> None:
        for observer in list(self.members):
            handler = getattr(observer, method, None)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception:
                log.exception("observer %r failed on %s", observer, method)
