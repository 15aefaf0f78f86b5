"""Projects nobody has touched for long: their volumes and snapshots, listed, and removed only on request.

A project is idle when nothing was written to its volumes (the storage tells when it last was; a
volume without a quota falls back to when it was made) and no snapshot was taken of it for
`retention_days`, and no container mounts its volumes now. `cleanup --dry-run` lists such
projects; only `cleanup --remove-idle` removes them. Nothing is ever removed by default.
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
    busy: set[str] = set()
    for volume in volumes:
        project = volume.labels.get(labels.PROJECT)
        if not project:
            continue
        by_project[project].append(volume.name)
        created = float(volume.labels.get(labels.CREATED_AT) or 0)
        active[project] = max(active[project], written.get(volume.name) or created)
        if volume.name in mounted:
            busy.add(project)
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
    """Remove an idle project's snapshots, then its volumes; what went, as `snapshot <id>` / `volume <name>`."""
    gone = []
    for snapshot_id in project.snapshots:
        if await backend.storage.delete_snapshot(f"{VOLUME_PREFIX}{project.project_id}", snapshot_id):
            gone.append(f"snapshot {snapshot_id}")
    gone += [f"volume {v}" for v in await remove_project_volume(backend, installation_id, project.project_id)]
    return gone
