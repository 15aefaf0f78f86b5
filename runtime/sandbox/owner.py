"""Who owns a container: the labels that let cleanup tell a live manager's sandboxes from orphans,
and the check whether that owner is still alive."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runtime import labels


def process_start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None off Linux / if gone.

    Paired with the pid it identifies one process: a reused pid has a different start.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


# A process probe: pid -> its start ticks, or None if no such process.
ProcessProbe = Callable[[int], str | None]
# The labels that name a container's owner; a manager taking over a task changes exactly these.
OWNER_LABELS = (labels.OWNER, labels.OWNER_HOST, labels.OWNER_PID, labels.OWNER_STARTED)


def host_identity() -> str:
    """Where an owner pid means something: the hostname plus the pid namespace, when Linux says.

    Two processes with one hostname but separate pid namespaces (a manager in a container
    sharing the host's UTS namespace) must not judge each other's pids: cleanup compares
    this whole string before it looks at a pid.
    """
    host = socket.gethostname()
    try:
        return f"{host}/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return host


@dataclass(frozen=True)
class Owner:
    """One manager instance in one process on one host."""

    installation: str
    manager_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=host_identity)
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=lambda: process_start_ticks(os.getpid()) or "")

    def labels(
        self,
        *,
        task_id: str,
        project_id: str,
        language: str,
        ttl: float,
        now: float | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        created = time.time() if now is None else now
        out = dict(extra or {})
        out.update({
            labels.MANAGED: "true",
            labels.TASK: task_id,
            labels.PROJECT: project_id,
            labels.LANGUAGE: language,
            labels.CREATED_AT: str(int(created)),
            labels.EXPIRES_AT: str(int(created + ttl)),
            **self.owner_labels(),
            labels.INSTALLATION: self.installation,
        })
        return out

    def owner_labels(self) -> dict[str, str]:
        return {
            labels.OWNER: self.manager_id,
            labels.OWNER_HOST: self.host,
            labels.OWNER_PID: str(self.pid),
            labels.OWNER_STARTED: self.started,
        }

    def volume_labels(self, project_id: str, *, cache_of: str | None = None) -> dict[str, str]:
        """A project volume's labels; `cache_of` a language: that language's cache volume's."""
        out = {
            labels.MANAGED: "true",
            labels.PROJECT: project_id,
            labels.INSTALLATION: self.installation,
            labels.CREATED_AT: str(int(time.time())),
        }
        if cache_of is not None:
            out[labels.CACHE] = cache_of
        return out


def default_probe(pid: int) -> str | None:
    """Start ticks of a running pid; off Linux (no /proc) only liveness, as "?"."""
    if os.path.isdir("/proc/self"):
        return process_start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    return "?"


def owner_gone(values: Mapping[str, str], *, host: str, probe: ProcessProbe | None = None) -> bool:
    """True only when we can tell: the owner ran here (same host and pid namespace) and that process is gone."""
    if values.get(labels.OWNER_HOST) != host:
        return False
    try:
        pid = int(values.get(labels.OWNER_PID, ""))
    except ValueError:
        return False
    if pid <= 0:
        return False
    started = (probe or default_probe)(pid)
    if started is None:
        return True
    recorded = values.get(labels.OWNER_STARTED, "")
    # A different start time means the pid was reused by another process.
    return bool(recorded) and started != "?" and started != recorded


def task_of(values: Mapping[str, str], name: str) -> str:
    """The task a container serves: its label, or for a warm-pool container the name it was renamed to;
    "(netns)" for a network namespace holder (it serves a project's sandboxes one after another)."""
    if values.get(labels.ROLE) == labels.ROLE_NETNS:
        return "(netns)"
    if labels.TASK in values:
        return values[labels.TASK]
    if values.get(labels.POOL):
        prefix = f"theappapp-{values.get(labels.PROJECT, '')}-"
        return name[len(prefix):] if name.startswith(prefix) else "(spare)"
    return "?"
