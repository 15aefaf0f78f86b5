"""Project filesystems nobody used lately are unmounted: every host mount slows every container.

Why: each container's mount namespace starts as a copy of the host's, so each mounted project
filesystem costs every sandbox's start and removal ~0.08 ms of host CPU (`benchmarks/bench_floor.py
--only mounts`). A host that kept every project it ever served mounted would start sandboxes slower
and slower as projects accumulate; unmounted when idle, the cost follows the projects in use. The
next create that needs one mounts it again (`DockerStorage.ensure`), in milliseconds.

Safe, whichever process runs it:
- A create holds its volumes' use locks (shared flocks, `locks`) from the check that finds them
  mounted until its container has started (Docker binds the mountpoint at start). The sweep takes a
  volume's use lock exclusively, without waiting, then its operation lock: never under a create,
  a snapshot or anything else on that volume, in any process.
- A volume some container holds (a running sandbox, a warm spare) stays: seen in the other mount
  namespaces first, and `Volumes.down` refuses it anyway (it mounts it back).
- A bare mountpoint is an immutable empty directory (`mounts`): a container that binds one anyway
  (a stopped container started again by hand) cannot write there.

Blocking: a worker thread only.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.storage import mounts
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import file_lock, last_used
from runtime.backends.docker.storage.volumes import Volumes
from runtime.errors import SandboxError

log = logging.getLogger(__name__)


def unmount_idle(layout: Layout, volumes: Volumes, idle: float, stop: threading.Event | None = None) -> list[str]:
    """Unmount and detach every volume mounted here that nothing used for `idle` seconds and that no
    container or operation holds now; the names unmounted. Never waits for a volume in use; stops early
    once `stop` is set (between two volumes)."""
    held: set[tuple[int, int]] | None = None  # what other mount namespaces hold: read once, if needed
    gone = []
    for name in layout.volume_names():
        if stop is not None and stop.is_set():
            break
        try:
            device = mounts.mounted_device(layout.mountpoint(name))
            if device is None:
                continue
            seen = last_used(layout.in_use(name))
            # Mounted before use files existed: its image's last write stands in.
            if (seen if seen is not None else os.stat(layout.image(name)).st_mtime) > time.time() - idle:
                continue
            if held is None:
                held = mounts.devices_in_other_namespaces()
            if (os.major(device), os.minor(device)) in held:
                continue
            if _unmount_if_free(layout, volumes, name, seen):
                gone.append(name)
        except (SandboxError, OSError) as err:  # removed meanwhile, a tool that failed: the next one
            log.warning("idle volume %s was left mounted: %s", name, err)
    return gone


def _unmount_if_free(layout: Layout, volumes: Volumes, name: str, seen: float | None) -> bool:
    """Unmount the volume if no create and no operation holds it, and it was not used since its last use
    was `seen` (None: it had no use file; taking its lock just made one)."""
    with file_lock(layout.in_use(name), wait=False) as unused:  # no create is using it
        if not unused:
            return False
        with file_lock(layout.lock(name), wait=False) as free:  # no other operation on it
            # Used between the first look and the locks (a create that came and went): not idle after all.
            if not free or (seen is not None and last_used(layout.in_use(name)) != seen):
                return False
            image = layout.image(name)
            # XFS writes its unmount record through the loop device into the image: that is not the
            # project's writing, which retention reads from the image's mtime (`usage`).
            before = os.stat(image)
            try:
                volumes.down(name, grace=0.0)  # a container that holds it: mounted back, ResourceInUse
            except ResourceInUse:
                return False
            os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
            return True
