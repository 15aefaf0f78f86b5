"""Can this host enforce quotas? What `prepare` checks before touching anything, as plain sentences.

Each problem says what is missing and how to fix it; none raises. Blocking (reads /proc, connects
to the engine's socket): called from a worker thread.
"""

from __future__ import annotations

import os
import socket
import struct
from urllib.parse import urlparse

from runtime.backends.docker.storage import commands

_CAPABILITIES = {  # bit: (name, what needs it)
    21: ("CAP_SYS_ADMIN", "mounting filesystems and setting up loop devices"),
    9: ("CAP_LINUX_IMMUTABLE", "making bare mountpoints immutable"),
    0: ("CAP_CHOWN", "giving a new volume to the sandbox user"),
}
_PACKAGES = {"mkfs.xfs": "xfsprogs", "xfs_growfs": "xfsprogs", "losetup": "util-linux", "fsfreeze": "util-linux",
             "mount": "mount", "umount": "mount", "cp": "coreutils"}


def problems(where: str) -> list[str]:
    """Everything that stops quotas here: privileges, tools, kernel, and where the engine runs."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            status = f.read()
    except OSError:
        status = ""
    return privilege_problems(os.geteuid(), status) + tool_problems() + kernel_problems() + engine_problems(where)


def effective_capabilities(status: str) -> int:
    """CapEff from the text of /proc/self/status (0 if absent)."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def privilege_problems(euid: int, status: str) -> list[str]:
    if euid != 0:
        return ["the runtime does not run as root, and quota volumes need root to make filesystems and mount them: "
                "run it as root (or leave disk quotas off)"]
    have = effective_capabilities(status)
    return [f"the runtime lacks {name}, needed for {why}: run it with that capability (or leave disk quotas off)"
            for bit, (name, why) in _CAPABILITIES.items() if not have & (1 << bit)]


def tool_problems() -> list[str]:
    missing = [tool for tool in commands.TOOLS if commands.which(tool) is None]
    packages = sorted({_PACKAGES[tool] for tool in missing})
    if not missing:
        return []
    return [f"{', '.join(missing)} not found (searched PATH and sbin): install them with "
            f"`apt-get install {' '.join(packages)}`"]


def kernel_problems() -> list[str]:
    problems = []
    if not os.path.exists("/dev/loop-control"):
        problems.append("this host has no loop devices (/dev/loop-control is missing): `modprobe loop`; inside a "
                        "container, give it the host's /dev/loop-control and loop devices")
    try:
        with open("/proc/filesystems", encoding="utf-8") as f:
            known = f.read().split()
    except OSError:
        known = []
    modules = f"/lib/modules/{os.uname().release}/kernel/fs/xfs"
    if "xfs" not in known and not os.path.isdir(modules):
        problems.append("the kernel has no XFS support loaded or installed: `modprobe xfs` (or install the kernel's "
                        "modules package)")
    return problems


def engine_problems(where: str) -> list[str]:
    """The engine must be local and see our mounts: a unix socket here, its daemon in our mount namespace."""
    url = urlparse(where)
    if url.scheme != "unix":
        return [f"the Docker engine is reached at {where}, not through a unix socket on this host: volumes mounted "
                "here would not be what it binds. Run the runtime on the engine's host with its local socket"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(url.path)
            pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except OSError as err:
        return [f"cannot connect to the Docker engine's socket {url.path}: {err}"]
    try:
        same = pid > 0 and os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        same = False
    if not same:
        return ["the Docker engine behind " + url.path + " runs in another mount namespace (or another container): "
                "filesystems mounted by the runtime would be invisible to it. Run the runtime on the engine's host, "
                "in its mount namespace"]
    return []
