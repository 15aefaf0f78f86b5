"""What the Docker backend needs to know of the OCI runtime its sandboxes run under."""

from __future__ import annotations

# Runtimes whose containers are the host kernel's own namespaces and processes: runc, Docker's
# default, and crun, the same in C (scripts/enable-crun.sh). Under them a kept network namespace can
# be joined (netns.py) and a container's pids are host pids (the exec's host-side killer). gVisor's
# runsc is neither: its netstack takes a namespace's addresses over, its processes live in its kernel.
HOST_KERNEL_RUNTIMES = frozenset({"runc", "crun"})


def on_host_kernel(runtime: str) -> bool:
    return runtime in HOST_KERNEL_RUNTIMES
