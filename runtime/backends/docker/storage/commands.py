"""The host tools the storage runs (mkfs.xfs, losetup, mount, xfs_growfs, fsfreeze, cp), built and run.

Builders are pure (unit-tested); `run` executes one with a deadline and turns any failure into
`CommandFailed`, an `EngineError` carrying the tool's own message, so no CalledProcessError
or TimeoutExpired ever reaches the core. Callers that must tell failures apart (umount's
"target is busy") look at `returncode` and `stderr`. `run` blocks: it is only called from
worker threads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from runtime.errors import EngineError

# The tools live in sbin, which a service's or a user's PATH may lack.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
DEFAULT_TIMEOUT = 30.0
COPY_TIMEOUT = 120.0  # a reflink copy of a fragmented image walks every extent
MKFS_TIMEOUT = 120.0

VOLUME_MOUNT_OPTIONS = "noatime,nosuid,nodev,discard,nouuid"
POOL_MOUNT_OPTIONS = "noatime,discard"  # discard: space freed in a volume image is freed in pool.img too

TOOLS = ("mkfs.xfs", "xfs_growfs", "losetup", "mount", "umount", "fsfreeze", "cp")


class CommandFailed(EngineError):
    """A host tool failed or did not finish in time; the message has its own words."""

    def __init__(self, message: str, argv: Sequence[str] = (), returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr


def search_path() -> str:
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts + [p for p in _SBIN if p not in parts])


def which(tool: str) -> str | None:
    return shutil.which(tool, path=search_path())


def run(argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run a tool; its stdout, or `CommandFailed`."""
    env = {"PATH": search_path(), "LC_ALL": "C"}  # C: messages the callers can match
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as err:
        raise CommandFailed(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s", argv) from err
    except OSError as err:  # the tool is missing or cannot run
        raise CommandFailed(f"cannot run `{argv[0]}`: {err}", argv) from err
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().replace("\n", "; ")
        raise CommandFailed(f"`{' '.join(argv)}` failed ({done.returncode}): {said}", argv, done.returncode, said)
    return done.stdout


# -- builders ------------------------------------------------------------------------------------


# 4 KiB sectors: a loop device with direct I/O takes its sector size from the file's direct-I/O
# alignment, and XFS asks 4 KiB alignment of a file that shares blocks (any image once snapshotted
# or cloned): a filesystem made with 512-byte sectors then no longer mounts ("device supports 4096
# byte sectors"). One made with 4 KiB sectors mounts on both.
_MKFS = ["mkfs.xfs", "-q", "-K", "-m", "reflink=1", "-s", "size=4096"]


def mkfs_volume(image: Path, log_size: int) -> list[str]:
    # -K: do not discard first (the file is fresh and sparse: nothing to discard).
    # No -f: never overwrite something that already holds a filesystem.
    return [*_MKFS, "-l", f"size={log_size}", str(image)]


def mkfs_pool(image: Path) -> list[str]:
    return [*_MKFS, str(image)]


def attach(image: Path) -> list[str]:
    # Direct I/O: the loop device reads and writes the image without a second page cache.
    return ["losetup", "--find", "--show", "--direct-io=on", str(image)]


def find_loop(image: Path) -> list[str]:
    return ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(image)]


def refresh_loop(device: str) -> list[str]:
    return ["losetup", "--set-capacity", device]


def detach_loop(device: str) -> list[str]:
    return ["losetup", "--detach", device]


def mount(device: str, target: Path, options: str) -> list[str]:
    return ["mount", "-t", "xfs", "-o", options, device, str(target)]


def unmount(target: Path) -> list[str]:
    return ["umount", str(target)]  # never -l: a busy filesystem must stay busy, and say so


def grow(target: Path) -> list[str]:
    return ["xfs_growfs", "-d", str(target)]


def flush(target: Path) -> list[str]:
    return ["sync", "--file-system", str(target)]  # syncfs(2): everything written there reaches the device


def freeze(target: Path) -> list[str]:
    return ["fsfreeze", "--freeze", str(target)]


def thaw(target: Path) -> list[str]:
    return ["fsfreeze", "--unfreeze", str(target)]


def reflink_copy(source: Path, target: Path) -> list[str]:
    # always: fail rather than silently make a full copy (the pool would then hold it twice).
    return ["cp", "--reflink=always", "--", str(source), str(target)]
