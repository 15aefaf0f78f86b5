"""Taking a test's storage root apart: every mount and loop device under it, then its files.

Shared by the storage tests; a reboot takes the same things away (`power_cut`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

from runtime.backends.docker.storage.mounts import parse_mountinfo, set_immutable


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [e.mountpoint for e in parse_mountinfo(f.read()) if e.mountpoint.startswith(f"{root}/")]


def loops_under(root: Path) -> list[str]:
    out = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True).stdout
    return [line.split(None, 1)[0] for line in out.splitlines() if f" {root}/" in f" {line.split(None, 1)[-1]}"]


def power_cut(root: Path) -> None:
    """Everything a reboot takes away: every mount and loop device of the storage (the files stay)."""
    for point in sorted(mounts_under(root), key=lambda p: p == f"{root}/pool"):  # the pool last
        if point == f"{root}/pool":
            for device in loops_under(root / "pool"):
                subprocess.run(["losetup", "-d", device], check=False)
        subprocess.run(["umount", "-l", point], check=False)
    for device in loops_under(root):
        subprocess.run(["losetup", "-d", device], check=False)


def remove_root(root: Path) -> None:
    power_cut(root)
    for directory in [root / "pool", *(root / "mounts").glob("*")]:
        with contextlib.suppress(OSError):
            set_immutable(directory, False)
    shutil.rmtree(root, ignore_errors=True)
