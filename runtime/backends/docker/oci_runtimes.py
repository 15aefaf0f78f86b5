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


def on_host_kernel(name: str, registered: Mapping[str, Any]) -> bool:
    """Whether the runtime the engine registered as `name` is one of those: judged by the program it runs
    (`docker info`'s Runtimes: name -> {"path": ...}), so a name chosen by the operator does not mislead;
    by the name itself when the engine gives no path."""
    entry = registered.get(name)
    path = entry.get("path") if isinstance(entry, Mapping) else None
    program = os.path.basename(path) if isinstance(path, str) and path else name
    return program in HOST_KERNEL_RUNTIMES
