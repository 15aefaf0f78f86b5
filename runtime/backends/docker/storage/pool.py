"""The pool: one sparse XFS image (reflink on) at `<root>/pool.img`, mounted at `<root>/pool`.

Every volume image and snapshot lives in it. Why a pool at all: reflink copies (snapshots,
clones, restores in milliseconds, sharing blocks) need XFS, and the host's own filesystem may
not be XFS; why sparse: it only takes, from the host's disk, what the volumes in it hold, and
`discard` at both levels gives back what is deleted. Blocking: worker threads only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from runtime.backends.docker.storage import commands, images, mounts, sizes
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import file_lock
from runtime.backends.docker.storage.volumes import Space, space
from runtime.errors import EngineError


def free_space(path: Path) -> int:
    """Free bytes (for unprivileged use, as df's Avail) on the filesystem that holds, or would hold, `path`."""
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Pool:
    def __init__(self, layout: Layout, size: int | None) -> None:
        self.layout = layout
        self.size = size  # None: the default, and never grown by `up`

    def mounted(self) -> bool:
        return mounts.mounted_device(self.layout.pool) is not None

    def space(self) -> Space:
        return space(self.layout.pool)

    def up(self) -> list[str]:
        """Create, attach and mount the pool as needed (idempotent); the problems that stopped it, if any."""
        layout = self.layout
        try:
            for directory in (layout.root, layout.mounts, layout.locks):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            return [f"cannot create the storage root {layout.root}: {err}; choose a storage_root on a local, "
                    "writable disk"]
        try:
            with file_lock(layout.locks / ".pool.lock"):
                if not layout.pool_image.exists():
                    problem = self._create()
                    if problem:
                        return [problem]
                images.mount(layout.pool_image, layout.pool, commands.POOL_MOUNT_OPTIONS)
                if self.size is not None and self.size > os.stat(layout.pool_image).st_size:
                    images.grow(layout.pool_image, layout.pool, sizes.round_up(self.size, sizes.MiB))
                for directory in (layout.volumes, layout.snapshots):
                    directory.mkdir(mode=0o700, exist_ok=True)
        except (OSError, EngineError) as err:  # a tool's failure (CommandFailed) included
            return [f"cannot attach and mount the storage pool {layout.pool_image} at {layout.pool}: {err}"]
        return []

    def _create(self) -> str | None:
        layout = self.layout
        size = self.size if self.size is not None else sizes.default_pool_size(free_space(layout.root))
        if size < sizes.MIN_POOL:
            return (f"not enough free space for a storage pool at {layout.root} ({sizes.describe(size)} would be "
                    f"90% of what is free; at least {sizes.describe(sizes.MIN_POOL)} is needed): free some space or "
                    "choose another storage_root")
        temporary = layout.root / ".pool.img.tmp"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        try:
            images.make(temporary, sizes.round_up(size, sizes.MiB), None)
            os.rename(temporary, layout.pool_image)
        except (OSError, commands.CommandFailed) as err:
            return (f"cannot create the storage pool image {layout.pool_image} ({sizes.describe(size)}, sparse): "
                    f"{err}; choose a storage_root on a local disk filesystem (ext4, xfs) that can hold it")
        return None

    def grow(self, size: int) -> int:
        """Grow the pool to `size` bytes, online (never shrinks); the size its filesystem now has."""
        with file_lock(self.layout.locks / ".pool.lock"):
            if size > os.stat(self.layout.pool_image).st_size:
                images.grow(self.layout.pool_image, self.layout.pool, sizes.round_up(size, sizes.MiB))
            return self.space().size
