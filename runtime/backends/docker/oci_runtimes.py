"""What the Docker backend needs to know of the OCI runtime its sandboxes run under."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Runtimes whose containers are the host kernel's own namespaces and processes: runc, Docker's
# default, and crun, the same in C (scripts/enable-crun.sh). Under them a kept network namespace can
# be joined (netns.py) and a container's pids are host pids (the exec's host-side killer). gVisor's
# runsc is neither: its netstack takes a namespace's addresses over, its processes live in its kernel.
HOST_KERNEL_RUNTIMES = frozenset({"runc", "crun"})


RUNC_SHIM = "io.containerd.runc.v2"  # how newer engines list a runtime given as a containerd shim


def on_host_kernel(name: str, registered: Mapping[str, Any]) -> bool:
    """Whether the runtime the engine registered as `name` is one of those: judged by the program it runs
    (`docker info`'s Runtimes: name -> {"path": ...}), so a name chosen by the operator does not mislead;
    for an entry with a shim type instead (Docker 23 and later), only runc's shim; by the name itself when
    the engine lists nothing for it."""
    entry = registered.get(name)
    if isinstance(entry, Mapping):
        path, shim = entry.get("path"), entry.get("runtimeType")
        if isinstance(path, str) and path:
            return os.path.basename(path) in HOST_KERNEL_RUNTIMES
        if isinstance(shim, str) and shim:
            return shim == RUNC_SHIM
    return name in HOST_KERNEL_RUNTIMES
