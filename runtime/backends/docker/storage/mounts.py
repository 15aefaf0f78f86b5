"""What is mounted where, the immutable guard on bare mountpoints, and whether a device is held.

All blocking (syscalls, /proc reads): called from worker threads only. `parse_mountinfo` is pure.

The guard: a volume's mountpoint directory is made immutable while empty, before anything is
mounted over it. If the volume's filesystem is ever not mounted there (after a reboot, before
the storage mounted it again; or unmounted behind our back) and Docker binds the bare
directory anyway, nothing can be written to it: Docker's first-mount copy fails (so the
container is not created), and a root process could not write either. Without it, such a
sandbox would write into the host's disk with no quota at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

# linux/fs.h
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x00000010


@dataclass(frozen=True)
class MountEntry:
    device: tuple[int, int]  # major, minor of the filesystem's device
    mountpoint: str
    fstype: str
    source: str
    # Propagation (optional fields): "shared:N" (peer group N), "master:N" (a slave of group N), ...
    tags: tuple[str, ...] = ()

    def peer_groups(self) -> set[str]:
        """The peer groups this mount belongs to (shared:N), as N."""
        return {tag.partition(":")[2] for tag in self.tags if tag.startswith("shared:")}

    def follows(self, ours: MountEntry) -> bool:
        """A copy of `ours` that an unmount of ours reaches by propagation: at the same place, a peer or a
        slave of its peer group (as a systemd service's private namespace holds the host's mounts). A bind
        of the same filesystem elsewhere (a container's /workspace) is not one, whatever its tags."""
        groups = ours.peer_groups()
        return (self.device == ours.device and self.mountpoint == ours.mountpoint
                and any(kind in ("shared", "master") and n in groups
                        for kind, _, n in (t.partition(":") for t in self.tags)))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The entries of /proc/<pid>/mountinfo (proc(5)); malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        major, _, minor = fields[2].partition(":")
        if not (major.isdigit() and minor.isdigit()) or len(fields) < dash + 3:
            continue
        entries.append(MountEntry((int(major), int(minor)), _unescape(fields[4]), fields[dash + 1],
                                  _unescape(fields[dash + 2]), tuple(fields[6:dash])))
    return entries


def mounts_of(device: int) -> list[MountEntry]:
    """Every mount of the filesystem on `device` (a dev_t) in this mount namespace."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        entries = parse_mountinfo(f.read())
    wanted = (os.major(device), os.minor(device))
    return [e for e in entries if e.device == wanted]


def devices_in_other_namespaces() -> set[tuple[int, int]]:
    """(major, minor) of every filesystem mounted in a mount namespace other than ours (containers'),
    leaving out the copies there that only follow our own mounts (`MountEntry.follows`).

    One mountinfo read per namespace, found through /proc/<pid>/ns/mnt (root sees every process's);
    a process that ends meanwhile is skipped, so a namespace that is going may be missed: callers
    treat this as a hint and still let the unmount decide (`images.unmount`).
    """
    try:
        ours = os.readlink("/proc/self/ns/mnt")
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            own = parse_mountinfo(f.read())
    except OSError:
        return set()
    seen = {ours}
    others = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            namespace = os.readlink(f"/proc/{pid}/ns/mnt")
            if namespace in seen:
                continue
            seen.add(namespace)
            with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
                others.append(parse_mountinfo(f.read()))
        except OSError:  # gone, or not ours to read
            continue
    return held_elsewhere(own, others)


def held_elsewhere(own: list[MountEntry], others: list[list[MountEntry]]) -> set[tuple[int, int]]:
    """The devices that the other namespaces' mounts hold, copies that follow one of `own` left out."""
    by_device: dict[tuple[int, int], list[MountEntry]] = {}
    for entry in own:
        by_device.setdefault(entry.device, []).append(entry)
    return {entry.device for entries in others for entry in entries
            if not any(entry.follows(mine) for mine in by_device.get(entry.device, ()))}


def device_number(device_path: str) -> int:
    """The dev_t of a block device node (what `st_dev` of a file on its filesystem is)."""
    return os.stat(device_path).st_rdev


def mounted_device(path: Path) -> int | None:
    """The dev_t of the filesystem mounted at `path`, or None when `path` is not a mountpoint."""
    try:
        here = os.stat(path).st_dev
        parent = os.stat(path.parent).st_dev
    except FileNotFoundError:
        return None
    return here if here != parent else None


def held(device_path: str) -> bool:
    """True while any mount in any namespace (a container's bind included) holds the block device.

    A mounted block device is claimed exclusively by its filesystem, so an O_EXCL open fails
    with EBUSY: the one check that also sees mounts in other mount namespaces.
    """
    try:
        fd = os.open(device_path, os.O_RDONLY | os.O_EXCL)
    except OSError as err:
        if err.errno == errno.EBUSY:
            return True
        raise
    os.close(fd)
    return False


def set_immutable(path: Path, on: bool) -> None:
    """chattr +i / -i on a directory (needs CAP_LINUX_IMMUTABLE)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # The kernel reads and writes an int here, whatever the ioctl number says.
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        wanted = flags | _FS_IMMUTABLE_FL if on else flags & ~_FS_IMMUTABLE_FL
        if wanted != flags:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", wanted))
    finally:
        os.close(fd)


def is_immutable(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
    finally:
        os.close(fd)
    return bool(flags & _FS_IMMUTABLE_FL)


def guarded_mountpoint(path: Path) -> None:
    """Make `path` an empty, immutable directory to mount over (it may exist already, guarded)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    if mounted_device(path) is None:
        set_immutable(path, True)


def remove_mountpoint(path: Path) -> None:
    """Undo `guarded_mountpoint` for a volume that is gone (not mounted any more)."""
    if not path.exists() or mounted_device(path) is not None:
        return
    set_immutable(path, False)
    with contextlib.suppress(OSError):  # not empty: someone else's files; leave them, unguarded
        os.rmdir(path)


_FITHAW = 0xC0045878  # _IOWR('X', 120, int)


def thaw_if_frozen(path: Path) -> bool:
    """Thaw the filesystem mounted at `path` if it is frozen (a process died mid-snapshot); True if it was."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, _FITHAW, 0)
    except OSError as err:
        if err.errno == errno.EINVAL:  # not frozen
            return False
        raise
    finally:
        os.close(fd)
    return True
