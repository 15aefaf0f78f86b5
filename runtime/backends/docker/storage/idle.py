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
import time

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.storage import mounts
from runtime.backends.docker.storage.layout import Layout
from runtime.backends.docker.storage.locks import file_lock, last_used
from runtime.backends.docker.storage.volumes import Volumes
from runtime.errors import SandboxError

log = logging.getLogger(__name__)


def unmount_idle(layout: Layout, volumes: Volumes, idle: float) -> list[str]:
    """Unmount and detach every volume mounted here that nothing used for `idle` seconds and that no
    container or operation holds now; the names unmounted. Never waits for a volume in use."""
    cutoff = time.time() - idle
    held = mounts.devices_in_other_namespaces()
    gone = []
    for name in layout.volume_names():
        device = mounts.mounted_device(layout.mountpoint(name))
        if device is None or (os.major(device), os.minor(device)) in held:
            continue
        used = last_used(layout.in_use(name))
        if used is None:  # mounted before use files existed: its image's last write stands in
            used = os.stat(layout.image(name)).st_mtime
        if used > cutoff:
            continue
        with file_lock(layout.in_use(name), wait=False) as unused, file_lock(layout.lock(name), wait=False) as free:
            if not (unused and free):
                continue
            try:
                volumes.down(name, grace=0.0)  # a container that holds it: mounted back, ResourceInUse
            except ResourceInUse:
                continue
            except (SandboxError, OSError) as err:
                log.warning("idle volume %s was left mounted: %s", name, err)
                continue
        gone.append(name)
    return gone
