"""Who owns a container: the labels that let cleanup tell a live manager's sandboxes from orphans."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
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
            labels.OWNER: self.manager_id,
            labels.OWNER_HOST: self.host,
            labels.OWNER_PID: str(self.pid),
            labels.OWNER_STARTED: self.started,
            labels.INSTALLATION: self.installation,
        })
        return out

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
