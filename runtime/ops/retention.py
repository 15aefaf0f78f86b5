"""Projects nobody has touched for long: their volumes and snapshots, listed, and removed only on request.

A project is idle when nothing was written to its volumes (the storage tells when each last was)
and no snapshot was taken of it for `retention_days`, and no container mounts its volumes now.
Where the storage cannot tell (a plain volume, or quotas not enforced here) the project is never
called idle: its age says nothing of its use. `cleanup --dry-run` lists idle projects; only
`cleanup --remove-idle` removes them. Nothing is ever removed by default.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from runtime import labels
from runtime.backends.base import Backend
from runtime.ops.volumes import remove_project_volume
from runtime.sandbox.naming import VOLUME_PREFIX


@dataclass(frozen=True)
class IdleProject:
    project_id: str
    last_active: float  # unix seconds
    volumes: tuple[str, ...]  # its workspace and language caches
    snapshots: tuple[str, ...]  # ids of its workspace's snapshots

    def describe(self, now: float) -> str:
        days = (now - self.last_active) / 86400
        parts = [f"volume {v}" for v in self.volumes] + [f"snapshot {s}" for s in self.snapshots]
        return f"project {self.project_id} (idle {days:.0f} days): {', '.join(parts)}"


async def idle_projects(backend: Backend, installation_id: str, days: float, *, now: float | None = None
                        ) -> list[IdleProject]:
    """This installation's projects idle for more than `days`, oldest first."""
    now = time.time() if now is None else now
    ours = {labels.MANAGED: "true", labels.INSTALLATION: installation_id}
    volumes = await backend.list_volumes(ours)
    mounted = {name for c in await backend.list_containers({labels.MANAGED: "true"}) for name in c.volumes}
    written = {u.name: u.last_written for u in await backend.storage.usage([v.name for v in volumes])}
    active: dict[str, float] = defaultdict(float)
    by_project: dict[str, list[str]] = defaultdict(list)
    busy: set[str] = set()  # in use now, or of unknown use: never idle
    for volume in volumes:
        project = volume.labels.get(labels.PROJECT)
        if not project:
            continue
        by_project[project].append(volume.name)
        last = written.get(volume.name)
        if volume.name in mounted or last is None:
            busy.add(project)
        else:
            active[project] = max(active[project], last)
    snapshots: dict[str, list[str]] = defaultdict(list)
    for record in await backend.storage.snapshots():
        project = record.labels.get(labels.PROJECT) or record.volume.removeprefix(VOLUME_PREFIX)
        if record.labels.get(labels.INSTALLATION) != installation_id:
            continue
        snapshots[project].append(record.id)
        active[project] = max(active[project], record.created)
    cutoff = now - days * 86400
    idle = [IdleProject(p, active[p], tuple(sorted(by_project.get(p, []))), tuple(snapshots.get(p, [])))
            for p in active if active[p] < cutoff and p not in busy]
    return sorted(idle, key=lambda i: i.last_active)


async def remove_idle(backend: Backend, installation_id: str, project: IdleProject) -> list[str]:
    """Remove an idle project's volumes, then its snapshots (a volume found in use after all keeps both:
    `SandboxError`); what went, as `volume <name>` / `snapshot <id>`."""
    gone = [f"volume {v}" for v in await remove_project_volume(backend, installation_id, project.project_id)]
    for snapshot_id in project.snapshots:
        if await backend.storage.delete_snapshot(f"{VOLUME_PREFIX}{project.project_id}", snapshot_id):
            gone.append(f"snapshot {snapshot_id}")
    return gone
