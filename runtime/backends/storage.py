"""Project storage behind the seam: volumes with a hard size, and snapshots of them.

What the core asks of an engine's storage, in its own words (volume names, byte counts,
snapshot ids): a volume that cannot grow past its quota whatever runs inside, its usage, a
way to change the quota, and snapshots that can be restored or cloned into a new volume.
How is the backend's business: the Docker backend gives each project volume a filesystem
of its own (see `runtime.backends.docker.storage`); Kubernetes would use a PVC's size and
CSI volume snapshots.

Contract notes:
- Only volumes created with a quota (`VolumeMount.quota`) are managed here; a volume made
  without one (storage off, or made before it was on) reports `quota=None`.
- `restore` and `remove` need the volume unused: the caller makes sure no container mounts it;
  the storage raises `ResourceInUse` if it finds otherwise.
- Snapshot ids are chosen by the caller and are unique per volume; they never leave their volume:
  `restore(volume, id)` and `clone(volume, id, ...)` find only that volume's snapshots. A volume
  name or snapshot id that could not safely name a file raises `InvalidIdentifier`; an unknown
  snapshot, or an id already taken, `InvalidRequest`.
- A quota cannot go below what a backend's filesystem allows (XFS: 300 MiB) and may not be
  able to shrink at all (XFS cannot): `InvalidRequest`, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from runtime.sandbox.spec import VolumeMount


@dataclass(frozen=True)
class StorageStatus:
    """Whether quotas are enforced here, by what, and if not, why (plain sentences with the fix)."""

    enforced: bool
    mechanism: str  # e.g. "a filesystem per project volume (xfs on loop devices), snapshots by reflink"
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeUsage:
    name: str
    used: int  # bytes in use, as the volume's filesystem counts them (its own bookkeeping included)
    quota: int | None  # bytes; None: not a quota volume
    last_written: float | None = None  # unix seconds of the last write to it, where the storage can tell


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    volume: str
    created: float  # unix seconds
    used: int  # bytes the volume held when the snapshot was taken
    labels: Mapping[str, str] = field(default_factory=dict)


class VolumeStorage(Protocol):
    """Quota volumes and their snapshots (`Backend.storage`)."""

    async def prepare(self) -> StorageStatus:
        """Make quota volumes available (idempotent; after a host reboot it mounts what is needed)."""
        ...

    @property
    def enforced(self) -> bool:
        """True once `prepare` found quotas enforceable; until then, and when not, volumes are plain."""
        ...

    async def set_quota(self, volume: str, quota: int) -> int:
        """Change a quota volume's size, also while it is mounted; the size it now has (`InvalidRequest`
        below what it holds, smaller when the backend cannot shrink, or not a quota volume)."""
        ...

    async def usage(self, volumes: list[str]) -> list[VolumeUsage]:
        """Used bytes and quota of each named volume that exists (others are left out)."""
        ...

    async def snapshot(self, volume: str, snapshot_id: str, labels: Mapping[str, str]) -> SnapshotRecord:
        """A consistent, read-only copy of the volume's content now (writes wait while it is taken)."""
        ...

    async def snapshots(self, volume: str | None = None) -> list[SnapshotRecord]:
        """The snapshots of one volume (None: of every volume), oldest first."""
        ...

    async def restore(self, volume: str, snapshot_id: str) -> None:
        """Make the volume's content the snapshot's (the volume must be unused; its quota stays)."""
        ...

    async def clone(self, volume: str, snapshot_id: str | None, target: VolumeMount) -> None:
        """A new volume `target` holding the snapshot's content (None: the volume's content now)."""
        ...

    async def delete_snapshot(self, volume: str, snapshot_id: str) -> bool:
        """False if there was none."""
        ...

    async def remove(self, volume: str) -> bool:
        """Remove the storage behind a removed volume (its snapshots stay); False if there was none."""
        ...
