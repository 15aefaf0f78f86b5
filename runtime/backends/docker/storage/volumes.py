"""Project volumes as filesystems of their own: each step blocking, for worker threads under the volume's lock.

A volume is `<pool>/volumes/<name>.img`, a sparse XFS image of its quota plus the log (see
`sizes`), on its own loop device, mounted at `<root>/mounts/<name>`. Nothing here asks Docker
anything: which volumes get a filesystem is decided by the caller (`storage`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.backends.docker.storage import commands, images, mounts, sizes
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import file_lock, forget, mark_used
from runtime.errors import InvalidRequest


@dataclass(frozen=True)
class Mounted:
    path: Path  # the mountpoint: what Docker binds
    device: int  # dev_t of the volume's filesystem: `os.stat(path).st_dev` while it is mounted
    fresh: bool = False  # its filesystem was made just now

    def still(self) -> bool:
        """Still mounted there (one stat): false once it was unmounted, or something else mounted over it."""
        try:
            return os.stat(self.path).st_dev == self.device
        except OSError:
            return False


@dataclass(frozen=True)
class Space:
    used: int
    size: int


def space(path: Path | int) -> Space:
    """Used bytes and size of the filesystem at `path` (or of an open fd's), as `df` counts them (one statvfs)."""
    st = os.statvfs(path)
    return Space((st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize)


class Volumes:
    def __init__(self, layout: Layout, uid: int, gid: int) -> None:
        self.layout = layout
        self.uid = uid
        self.gid = gid

    def exists(self, name: str) -> bool:
        return self.layout.image(name).exists()

    def quota(self, name: str) -> int:
        """The volume's quota, read from its image's size (it need not be mounted)."""
        return sizes.quota_of(os.stat(self.layout.image(name)).st_size)

    def up(self, name: str, quota: int | None, *, use: bool = True) -> Mounted | None:
        """Mount the volume's filesystem, making it first if it has none and `quota` is given.

        None when it has none and no quota is given (a plain volume). A fresh filesystem's root is
        given to the sandbox user; an empty root is then also what makes Docker copy the image's
        own files (and their owner) into it on first mount, as with a named volume. `use`: counts as
        a use (the idle sweep leaves it mounted a while); off for a look at it (`usage`).
        """
        image = self.layout.image(name)
        fresh = False
        if not image.exists():
            if quota is None:
                return None
            self._make(name, quota)
            fresh = True
        mountpoint = self.layout.mountpoint(name)
        if use:
            mark_used(self.layout.in_use(name))
        # Mounting writes to the image (XFS's log), which is not the project writing: retention reads
        # the last write from the image's mtime (`usage`), so a mount made now leaves it as it was. Only
        # where nothing has it (no loop device yet), so no container can be writing to it meanwhile.
        idle = not fresh and mounts.mounted_device(mountpoint) is None and images.loop_of(image) is None
        before = os.stat(image) if idle else None
        device = images.mount(image, mountpoint, commands.VOLUME_MOUNT_OPTIONS)
        if before is not None:
            os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
        if fresh:
            os.chown(mountpoint, self.uid, self.gid)
        return Mounted(mountpoint, device, fresh)

    def _make(self, name: str, quota: int) -> None:
        # Images are sparse, so quotas may add up to more than the pool (as thin provisioning does); a new
        # volume is refused only when the pool could not hold even it now: a full pool fails every volume.
        pool = space(self.layout.pool)
        if pool.size - pool.used < quota:
            raise InvalidRequest(
                f"the storage pool has {sizes.describe(pool.size - pool.used)} free, less than the new volume's "
                f"quota ({sizes.describe(quota)}): grow the pool (THEAPPAPP_STORAGE_POOL_SIZE) or remove idle projects"
            )
        temporary = self.layout.temporary_image(name)
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()  # left by a crash: never half-made under the real name
        images.make(temporary, sizes.image_size(quota), sizes.LOG_SIZE)
        os.rename(temporary, self.layout.image(name))

    def mounted(self, name: str) -> Mounted:
        """The volume mounted; `InvalidRequest` if it is not a quota volume."""
        found = self.up(name, None)
        if found is None:
            raise InvalidRequest(f"volume {name} has no disk quota (it was made without one): this needs one")
        return found

    def grow(self, name: str, quota: int) -> int:
        """Grow the volume to `quota` (checked and rounded), online; the size it now has."""
        mounted = self.mounted(name)
        now = space(mounted.path)
        if quota < now.size:
            below = " and below what it holds" if quota < now.used else ""
            raise InvalidRequest(
                f"volume {name} has {sizes.describe(now.size)} and {sizes.describe(now.used)} in use: a quota of "
                f"{sizes.describe(quota)} would shrink it{below}, and XFS filesystems cannot shrink. "
                "To make it smaller, clone it into a new volume of the size wanted once its content fits"
            )
        if quota > now.size:
            images.grow(self.layout.image(name), mounted.path, sizes.image_size(quota))
        return space(mounted.path).size

    def down(self, name: str, grace: float = images.RELEASE_GRACE) -> None:
        """Unmount and detach (`ResourceInUse` while a container holds it, `grace` seconds after a removal)."""
        image = self.layout.image(name)
        if image.exists():
            images.unmount(image, self.layout.mountpoint(name), commands.VOLUME_MOUNT_OPTIONS, f"volume {name}",
                           grace)

    def remove(self, name: str) -> bool:
        """Unmount, detach and delete the volume's filesystem, then its lock files (the caller holds its
        operation lock, as for every method here); False if it had no filesystem."""
        image = self.layout.image(name)
        had = image.exists()
        if had:
            self.down(name)
            image.unlink()
        mounts.remove_mountpoint(self.layout.mountpoint(name))
        forget(self.layout.lock(name), self.layout.in_use(name))
        return had

    def frozen_copy(self, name: str, target: Path) -> Space:
        """A reflink copy of the live volume at `target`, taken with its filesystem frozen.

        Freezing flushes everything to the image and holds writers (they wait, they do not fail)
        for the few milliseconds the copy takes; it is always thawed, whatever happens.
        """
        mounted = self.mounted(name)
        taken = space(mounted.path)
        try:
            commands.run(commands.freeze(mounted.path))
            commands.run(commands.reflink_copy(self.layout.image(name), target), timeout=commands.COPY_TIMEOUT)
        except BaseException:
            with contextlib.suppress(commands.CommandFailed):  # not frozen after all: the first error counts
                commands.run(commands.thaw(mounted.path))
            raise
        commands.run(commands.thaw(mounted.path))
        return taken

    def install(self, name: str, source: Path | None, quota: int | None) -> Mounted:
        """Make `source` (a snapshot's image) the volume's filesystem, at least `quota` big, and mount it.

        None: the copy is already at `layout.temporary_image(name)` (a frozen copy of another volume).
        The volume must be down. The copy is made beside the image and renamed over it, so a failure
        leaves the old image in place.
        """
        image, temporary = self.layout.image(name), self.layout.temporary_image(name)
        try:
            if source is not None:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
                commands.run(commands.reflink_copy(source, temporary), timeout=commands.COPY_TIMEOUT)
            os.chmod(temporary, 0o600)  # the snapshot is read-only; the copy is the live volume
            wanted = sizes.image_size(quota) if quota is not None else 0
            grown = wanted > os.stat(temporary).st_size
            if grown:
                os.truncate(temporary, wanted)
            os.rename(temporary, image)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        mountpoint = self.layout.mountpoint(name)
        mark_used(self.layout.in_use(name))
        device = images.mount(image, mountpoint, commands.VOLUME_MOUNT_OPTIONS)
        if grown:
            commands.run(commands.grow(mountpoint))
        return Mounted(mountpoint, device)

    def thaw_abandoned(self) -> None:
        """A process killed between freeze and thaw leaves its volume frozen (every write hangs): thaw the
        mounted volumes whose lock nobody holds (a snapshot in progress holds it)."""
        for name in self.layout.volume_names():
            mountpoint = self.layout.mountpoint(name)
            with contextlib.suppress(OSError):
                if mounts.mounted_device(mountpoint) is None:
                    continue
                with file_lock(self.layout.lock(name), wait=False) as free:
                    if free:
                        mounts.thaw_if_frozen(mountpoint)
