"""What `theappapp-sandbox ls` shows: this installation's containers and volumes, as table rows."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime import labels
from runtime.backends.base import Backend
from runtime.sandbox.owner import default_probe, host_identity, owner_gone, task_of
from runtime.units import describe


@dataclass(frozen=True)
class ContainerRow:
    name: str
    state: str
    age: str
    task: str
    project: str
    language: str
    owner: str  # "pid@host", with "(gone)" when cleanup would call it an orphan
    expires: str
    installation: str


@dataclass(frozen=True)
class VolumeRow:
    name: str
    project: str
    age: str
    in_use: str
    installation: str
    used: str = "-"
    quota: str = "-"  # "none": a volume without a quota
    snapshots: str = "-"  # how many, and the newest one's id


def human_age(seconds: float | None) -> str:
    """`42s`, `5m`, `3h`, `2d`; '-' when unknown. Negative (a future time) reads as `in …`."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "in " + human_age(-seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _int(values: Mapping[str, str], key: str) -> int | None:
    try:
        return int(values[key])
    except (KeyError, ValueError):
        return None


def _filters(installation_id: str | None) -> dict[str, str | None]:
    wanted: dict[str, str | None] = {labels.MANAGED: "true"}
    if installation_id is not None:
        wanted[labels.INSTALLATION] = installation_id
    return wanted


async def container_rows(backend: Backend, installation_id: str | None, *, now: float | None = None
                         ) -> list[ContainerRow]:
    """Managed containers of one installation (None: every installation), oldest first."""
    now = time.time() if now is None else now
    host = host_identity()
    rows: list[tuple[int, ContainerRow]] = []
    for entry in await backend.list_containers(_filters(installation_id)):
        values: Mapping[str, str] = entry.labels
        name = entry.name
        created = _int(values, labels.CREATED_AT) or int(entry.created or now)
        expires = _int(values, labels.EXPIRES_AT)
        owner = f"{values.get(labels.OWNER_PID, '?')}@{values.get(labels.OWNER_HOST, '?').split('/')[0]}"
        if owner_gone(values, host=host, probe=default_probe):
            owner += " (gone)"
        rows.append((created, ContainerRow(
            name=name,
            state=entry.state,
            age=human_age(now - created),
            task=task_of(values, name),
            project=values.get(labels.PROJECT, "?"),
            language=values.get(labels.LANGUAGE, "?"),
            owner=owner,
            expires="-" if expires is None else ("expired" if expires < now else human_age(now - expires)),
            installation=values.get(labels.INSTALLATION, "?"),
        )))
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


async def volume_rows(backend: Backend, installation_id: str | None, *, now: float | None = None
                      ) -> list[VolumeRow]:
    """Managed volumes of one installation (None: every installation), by name."""
    now = time.time() if now is None else now
    used: set[str] = set()
    for entry in await backend.list_containers({labels.MANAGED: "true"}):
        used.update(entry.volumes)
    rows = []
    volumes = await backend.list_volumes(_filters(installation_id))
    usage = {u.name: u for u in await backend.storage.usage([v.name for v in volumes])} if volumes else {}
    snapshots: dict[str, list[str]] = {}
    for snapshot in await backend.storage.snapshots():
        snapshots.setdefault(snapshot.volume, []).append(snapshot.id)
    for volume in volumes:
        values: Mapping[str, str] = volume.labels
        created = _int(values, labels.CREATED_AT)
        size = usage.get(volume.name)
        taken = snapshots.get(volume.name, [])
        rows.append(VolumeRow(
            name=volume.name,
            project=values.get(labels.PROJECT, "?"),
            age=human_age(None if created is None else now - created),
            in_use="yes" if volume.name in used else "no",
            installation=values.get(labels.INSTALLATION, "?"),
            used="-" if size is None else describe(size.used),
            quota="-" if size is None else "none" if size.quota is None else describe(size.quota),
            snapshots=f"{len(taken)} (newest {taken[-1]})" if taken else "0",
        ))
    return sorted(rows, key=lambda r: r.name)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
