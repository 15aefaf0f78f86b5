"""Where the storage keeps everything under its root, and the names that may become paths.

    <root>/pool.img                          sparse image of the pool (XFS, reflink=1)
    <root>/pool/                             the pool, mounted (its bare directory immutable)
    <root>/pool/volumes/<volume>.img         one project volume's filesystem, sized to its quota
    <root>/pool/snapshots/<volume>/<id>.img  reflink copies of it, read-only; <id>.json beside each
    <root>/mounts/<volume>/                  where the volume is mounted (bare directory immutable)
    <root>/locks/<volume>.lock               flock: one operation per volume across processes
    <root>/locks/<volume>.use                shared flock: creates using the volume; its mtime: the last use
                                             (both deleted with the volume: `locks.forget`)

A volume name or snapshot id is refused unless it matches its pattern, and every path is
checked to be a direct child of the directory it belongs in: nothing a caller passes can
name a path elsewhere, and a snapshot is only ever looked up under its own volume's folder.
Temporary files start with "." so that no valid name can collide with one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import InvalidIdentifier

# Docker's volume name rule ([a-zA-Z0-9][a-zA-Z0-9_.-]+), capped so "<name>.img" and the
# temporary names stay far inside NAME_MAX.
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

DEFAULT_ROOT = "/var/lib/theappapp-sandbox/storage"


def check_volume_name(name: object) -> str:
    if not isinstance(name, str) or not VOLUME_NAME.fullmatch(name):
        raise InvalidIdentifier(
            f"invalid volume name {name!r}: use 1-200 characters from letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_snapshot_id(snapshot_id: object) -> str:
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise InvalidIdentifier(
            f"invalid snapshot id {snapshot_id!r}: use 1-63 characters from letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return snapshot_id


def _child(directory: Path, name: str) -> Path:
    """`directory/name`, refused unless it is exactly one level below `directory` (no separator, no ..)."""
    path = directory / name
    if os.sep in name or name in (".", "..") or path.parent != directory:
        raise InvalidIdentifier(f"{name!r} would leave {directory}")
    return path


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Layout:
        return cls(Path(os.path.abspath(root)))

    @property
    def pool_image(self) -> Path:
        return self.root / "pool.img"

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def volumes(self) -> Path:
        return self.pool / "volumes"

    @property
    def snapshots(self) -> Path:
        return self.pool / "snapshots"

    @property
    def mounts(self) -> Path:
        return self.root / "mounts"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def image(self, volume: str) -> Path:
        return _child(self.volumes, check_volume_name(volume) + ".img")

    def temporary_image(self, volume: str) -> Path:
        return _child(self.volumes, "." + check_volume_name(volume) + ".img.tmp")

    def mountpoint(self, volume: str) -> Path:
        return _child(self.mounts, check_volume_name(volume))

    def lock(self, volume: str) -> Path:
        return _child(self.locks, check_volume_name(volume) + ".lock")

    def in_use(self, volume: str) -> Path:
        return _child(self.locks, check_volume_name(volume) + ".use")

    def snapshot_dir(self, volume: str) -> Path:
        return _child(self.snapshots, check_volume_name(volume))

    def snapshot_image(self, volume: str, snapshot_id: str) -> Path:
        return _child(self.snapshot_dir(volume), check_snapshot_id(snapshot_id) + ".img")

    def snapshot_sidecar(self, volume: str, snapshot_id: str) -> Path:
        return _child(self.snapshot_dir(volume), check_snapshot_id(snapshot_id) + ".json")

    def temporary_snapshot(self, volume: str, snapshot_id: str, suffix: str) -> Path:
        return _child(self.snapshot_dir(volume), "." + check_snapshot_id(snapshot_id) + suffix + ".tmp")

    def volume_names(self) -> list[str]:
        """The volumes that have an image in the pool (blocking: lists a directory)."""
        try:
            names = os.listdir(self.volumes)
        except FileNotFoundError:
            return []
        return sorted(n[:-4] for n in names if n.endswith(".img") and VOLUME_NAME.fullmatch(n[:-4]))

    def locked_volumes(self) -> list[str]:
        """The volumes that have a lock file (blocking: lists a directory)."""
        try:
            names = os.listdir(self.locks)
        except FileNotFoundError:
            return []
        stems = {n.rsplit(".", 1)[0] for n in names if n.endswith((".lock", ".use"))}
        return sorted(n for n in stems if VOLUME_NAME.fullmatch(n))

    def snapshotted_volumes(self) -> list[str]:
        try:
            names = os.listdir(self.snapshots)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if VOLUME_NAME.fullmatch(n))
