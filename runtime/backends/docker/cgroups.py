"""A container's cgroup counters, read from the host: OOM kills and resource usage.

Docker's `OOMKilled` flag only covers the container's main process; a process killed
by the OOM killer inside an exec shows up only in the cgroup's `oom_kill` counter.
When the engine is on this host, reading the counter is a file read (microseconds);
otherwise the manager reads it from inside the container (see `OOM_PROBE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runtime.sandbox.events import ResourceUsage

ROOT = Path("/sys/fs/cgroup")
# Shell command that prints the counters from inside a container (cgroup v1 or v2).
OOM_PROBE = "/bin/cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null"
_OOM_KILL = re.compile(rb"^oom_kill (\d+)$", re.MULTILINE)


def parse_oom_kills(text: bytes) -> int | None:
    match = _OOM_KILL.search(text)
    return int(match.group(1)) if match else None


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _int(path: Path | None) -> int | None:
    raw = _read(path)
    try:
        return int(raw.split()[0]) if raw else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ContainerCgroup:
    """The controller directories of one container's cgroup, as far as they were found."""

    version: int
    memory: Path | None
    cpu: Path | None
    pids: Path | None

    @classmethod
    def locate(cls, container_id: str, version: int, driver: str, root: Path = ROOT) -> ContainerCgroup | None:
        if version == 2:
            for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
                if (root / rel / "memory.events").exists():
                    d = root / rel
                    return cls(2, d, d, d)
            return None
        rels = [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]
        if driver == "systemd":
            rels.reverse()

        def find(controller: str, probe: str) -> Path | None:
            return next((root / controller / r for r in rels if (root / controller / r / probe).exists()), None)

        memory = find("memory", "memory.oom_control")
        if memory is None:
            return None
        return cls(1, memory, find("cpuacct", "cpuacct.usage"), find("pids", "pids.current"))

    def exists(self) -> bool:
        """False once the engine has torn the cgroup down: the container is no longer running."""
        return self.memory is not None and self.memory.is_dir()

    def oom_kills(self) -> int | None:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        raw = _read(self.memory / name if self.memory else None)
        return parse_oom_kills(raw) if raw is not None else None

    def usage(self) -> ResourceUsage:
        if self.version == 2:
            cpu = _read(self.cpu / "cpu.stat" if self.cpu else None) or b""
            match = re.search(rb"^usage_usec (\d+)$", cpu, re.MULTILINE)
            return ResourceUsage(
                cpu_seconds=int(match.group(1)) / 1e6 if match else None,
                peak_memory_bytes=_int(self.memory / "memory.peak" if self.memory else None),
                peak_pids=_int(self.pids / "pids.peak" if self.pids else None),
            )
        nanos = _int(self.cpu / "cpuacct.usage" if self.cpu else None)
        return ResourceUsage(
            cpu_seconds=nanos / 1e9 if nanos is not None else None,
            peak_memory_bytes=_int(self.memory / "memory.max_usage_in_bytes" if self.memory else None),
            peak_pids=_int(self.pids / "pids.peak" if self.pids else None),
        )
