"""Snapshots of quota volumes: read-only reflink copies of their images, each with a JSON sidecar.

`<pool>/snapshots/<volume>/<id>.img` shares every block with the volume when it is taken, so a
snapshot costs only the blocks the volume changes afterwards (copy on write, in the pool).
The sidecar `<id>.json` is written last and removed first: a snapshot is listed only once it
is complete, and is never listed half-deleted. Blocking: worker threads under the volume's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.backends.docker.storage.layout import SNAPSHOT_ID, Layout, check_volume_name
from runtime.backends.docker.storage.volumes import Volumes
from runtime.backends.storage import SnapshotRecord
from runtime.errors import InvalidRequest


def _write_atomically(path: Path, temporary: Path, data: bytes) -> None:
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)


def record_from(data: Any, volume: str, snapshot_id: str) -> SnapshotRecord | None:
    """A sidecar's record, or None unless it is well-formed and names this very volume and id."""
    if not isinstance(data, dict) or data.get("id") != snapshot_id or data.get("volume") != volume:
        return None
    labels = data.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    try:
        return SnapshotRecord(snapshot_id, volume, float(data["created"]), int(data["used"]), dict(labels))
    except (KeyError, TypeError, ValueError):
        return None


class Snapshots:
    def __init__(self, layout: Layout, volumes: Volumes) -> None:
        self.layout = layout
        self.volumes = volumes

    def take(self, volume: str, snapshot_id: str, labels: Mapping[str, str]) -> SnapshotRecord:
        image = self.layout.snapshot_image(volume, snapshot_id)
        sidecar = self.layout.snapshot_sidecar(volume, snapshot_id)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise InvalidRequest("snapshot labels are text keys with text values")
        if image.exists() or sidecar.exists():
            raise InvalidRequest(f"volume {volume} already has a snapshot {snapshot_id!r}")
        if not self.volumes.exists(volume):
            raise InvalidRequest(f"volume {volume} has no disk quota (made without one): it cannot be snapshotted")
        image.parent.mkdir(mode=0o700, exist_ok=True)
        temporary = self.layout.temporary_snapshot(volume, snapshot_id, ".img")
        try:
            taken = self.volumes.frozen_copy(volume, temporary)
            os.chmod(temporary, 0o444)
            os.rename(temporary, image)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        record = SnapshotRecord(snapshot_id, volume, time.time(), taken.used, dict(labels))
        data = {"id": snapshot_id, "volume": volume, "created": record.created, "used": record.used,
                "size": taken.size, "labels": dict(record.labels)}
        _write_atomically(sidecar, self.layout.temporary_snapshot(volume, snapshot_id, ".json"),
                          json.dumps(data, sort_keys=True).encode())
        return record

    def image(self, volume: str, snapshot_id: str) -> Path:
        """The image of a complete snapshot of this volume, or `InvalidRequest`."""
        image = self.layout.snapshot_image(volume, snapshot_id)
        if not (self.layout.snapshot_sidecar(volume, snapshot_id).exists() and image.exists()):
            raise InvalidRequest(f"volume {volume} has no snapshot {snapshot_id!r}")
        return image

    def list(self, volume: str | None) -> list[SnapshotRecord]:
        names = [check_volume_name(volume)] if volume is not None else self.layout.snapshotted_volumes()
        found = []
        for name in names:
            try:
                entries = os.listdir(self.layout.snapshot_dir(name))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.startswith(".") or not entry.endswith(".json"):
                    continue
                record = self._read(name, entry[: -len(".json")])
                if record is not None:
                    found.append(record)
        return sorted(found, key=lambda r: (r.created, r.volume, r.id))

    def _read(self, volume: str, snapshot_id: str) -> SnapshotRecord | None:
        if not SNAPSHOT_ID.fullmatch(snapshot_id):
            return None
        try:
            with open(self.layout.snapshot_sidecar(volume, snapshot_id), "rb") as f:
                data = json.loads(f.read())
        except (OSError, ValueError):  # ValueError: not JSON
            return None
        if not self.layout.snapshot_image(volume, snapshot_id).exists():
            return None
        return record_from(data, volume, snapshot_id)

    def delete(self, volume: str, snapshot_id: str) -> bool:
        sidecar = self.layout.snapshot_sidecar(volume, snapshot_id)
        image = self.layout.snapshot_image(volume, snapshot_id)
        existed = False
        for path in (sidecar, image):  # sidecar first: never listed half-deleted
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                existed = True
        with contextlib.suppress(OSError):  # only if it is empty now
            os.rmdir(self.layout.snapshot_dir(volume))
        return existed
