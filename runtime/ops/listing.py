"""What `theappapp-sandbox ls` shows: this installation's containers and volumes, as table rows."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker

from runtime import labels
from runtime.ops.cleanup import default_probe, owner_gone, task_of
from runtime.sandbox.owner import host_identity


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


def _filters(installation_id: str | None) -> dict[str, list[str]]:
    wanted = [f"{labels.MANAGED}=true"]
    if installation_id is not None:
        wanted.append(f"{labels.INSTALLATION}={installation_id}")
    return {"label": wanted}


def container_rows(
    api: docker.APIClient, installation_id: str | None, *, now: float | None = None
) -> list[ContainerRow]:
    """Managed containers of one installation (None: every installation), oldest first."""
    now = time.time() if now is None else now
    host = host_identity()
    rows: list[tuple[int, ContainerRow]] = []
    for entry in api.containers(all=True, filters=_filters(installation_id)):
        values: Mapping[str, str] = entry.get("Labels") or {}
        name = str((entry.get("Names") or ["?"])[0]).lstrip("/")
        created = _int(values, labels.CREATED_AT) or int(entry.get("Created") or now)
        expires = _int(values, labels.EXPIRES_AT)
        owner = f"{values.get(labels.OWNER_PID, '?')}@{values.get(labels.OWNER_HOST, '?').split('/')[0]}"
        if owner_gone(values, host=host, probe=default_probe):
            owner += " (gone)"
        rows.append((created, ContainerRow(
            name=name,
            state=str(entry.get("State") or "?"),
            age=human_age(now - created),
            task=task_of(values, name),
            project=values.get(labels.PROJECT, "?"),
            language=values.get(labels.LANGUAGE, "?"),
            owner=owner,
            expires="-" if expires is None else ("expired" if expires < now else human_age(now - expires)),
            installation=values.get(labels.INSTALLATION, "?"),
        )))
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def volume_rows(api: docker.APIClient, installation_id: str | None, *, now: float | None = None) -> list[VolumeRow]:
    """Managed volumes of one installation (None: every installation), by name."""
    now = time.time() if now is None else now
    used: set[str] = set()
    for entry in api.containers(all=True, filters={"label": [f"{labels.MANAGED}=true"]}):
        used.update(m.get("Name", "") for m in entry.get("Mounts") or () if m.get("Type") == "volume")
    rows = []
    for volume in api.volumes(filters=_filters(installation_id)).get("Volumes") or ():
        values: Mapping[str, str] = volume.get("Labels") or {}
        created = _int(values, labels.CREATED_AT)
        rows.append(VolumeRow(
            name=str(volume["Name"]),
            project=values.get(labels.PROJECT, "?"),
            age=human_age(None if created is None else now - created),
            in_use="yes" if volume["Name"] in used else "no",
            installation=values.get(labels.INSTALLATION, "?"),
        ))
    return sorted(rows, key=lambda r: r.name)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
