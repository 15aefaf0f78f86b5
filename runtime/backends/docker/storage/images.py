"""XFS image files on loop devices: make, attach, mount, grow, unmount, detach. Blocking (threads only).

Used for the pool and for every project volume alike. A loop device is found again by its
backing file (`losetup --associated`) before a new one is attached, so running any of this
twice, or after a crash between two steps, never attaches an image twice: after a host
reboot nothing is attached and everything is attached again.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from runtime.backends.base import ResourceInUse
from runtime.backends.docker.storage import commands, mounts
from runtime.errors import EngineError

RELEASE_GRACE = 2.0  # seconds a just-removed container may still hold a volume
_POLL = 0.02


def create_sparse(image: Path, size: int) -> None:
    """A new sparse file of `size` bytes (refused if it exists: never clobber a filesystem)."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def loop_of(image: Path) -> str | None:
    """The loop device the image is attached to, if any."""
    found = commands.run(commands.find_loop(image)).split()
    return found[0] if found else None


def attach(image: Path) -> str:
    """The image's loop device, attaching it if it has none."""
    return loop_of(image) or commands.run(commands.attach(image)).strip()


def detach(image: Path) -> None:
    """Detach every loop device still backed by the image (it must not be mounted any more)."""
    for device in commands.run(commands.find_loop(image)).split():
        commands.run(commands.detach_loop(device))


def mount(image: Path, mountpoint: Path, options: str) -> int:
    """Attach and mount the image at `mountpoint` unless it is mounted there already; the dev_t.

    The mountpoint is made an immutable empty directory first (see `mounts`).
    """
    device = attach(image)
    number = mounts.device_number(device)
    there = mounts.mounted_device(mountpoint)
    if there == number:
        return number
    if there is not None:
        raise EngineError(f"another filesystem than {image.name} is mounted at {mountpoint}; unmount it")
    mounts.guarded_mountpoint(mountpoint)
    commands.run(commands.mount(device, mountpoint, options))
    return number


def grow(image: Path, mountpoint: Path, size: int) -> None:
    """Grow the image file, then, online, its loop device and the filesystem mounted at `mountpoint`."""
    if os.stat(image).st_size < size:
        os.truncate(image, size)
    device = attach(image)
    commands.run(commands.refresh_loop(device))
    commands.run(commands.grow(mountpoint))


def unmount(image: Path, mountpoint: Path, options: str, what: str, grace: float = RELEASE_GRACE) -> None:
    """Unmount the image's filesystem and detach its loop device; `ResourceInUse` if anything holds it.

    A container's bind of the filesystem survives our unmount (the filesystem stays alive in the
    bind), so "in use" is decided by the device, not by umount alone: another mount of it here
    (Docker's own bind under /var/lib/docker/volumes) refuses; then umount, never lazy (EBUSY: a
    process has a file open on our mount); then an exclusive open of the device, which fails while
    any mount in any namespace holds it — in which case it is mounted back as it was.

    A container just removed can hold the device a little longer (its mount namespace and Docker's
    bind go after `docker rm` returns: up to ~0.25 s seen here), so each check is retried for
    `grace` seconds before the volume counts as in use.
    """
    device = loop_of(image)
    if device is None:
        return
    number = mounts.device_number(device)
    deadline = time.monotonic() + grace
    while others := [m.mountpoint for m in mounts.mounts_of(number) if m.mountpoint != str(mountpoint)]:
        if time.monotonic() > deadline:
            raise ResourceInUse(f"{what} is in use (mounted at {', '.join(others)}): stop the containers using it")
        time.sleep(_POLL)
    while mounts.mounted_device(mountpoint) == number:
        try:
            commands.run(commands.unmount(mountpoint))
        except commands.CommandFailed as err:
            if "busy" not in err.stderr:
                raise
            if time.monotonic() > deadline:
                raise ResourceInUse(f"{what} is in use (a process has files open on it)") from err
            time.sleep(_POLL)
    while mounts.held(device):
        if time.monotonic() > deadline:
            with contextlib.suppress(EngineError):
                commands.run(commands.mount(device, mountpoint, options))
            raise ResourceInUse(f"{what} is in use by a container: stop the containers using it")
        time.sleep(_POLL)
    commands.run(commands.detach_loop(device))
    detach(image)  # any other (stale) device of the same image


def make(image: Path, size: int, log_size: int | None) -> None:
    """A new sparse image of `size` bytes holding a fresh XFS filesystem (reflink on)."""
    create_sparse(image, size)
    try:
        commands.run(commands.mkfs_volume(image, log_size) if log_size else commands.mkfs_pool(image),
                      timeout=commands.MKFS_TIMEOUT)
    except BaseException:
        with contextlib.suppress(OSError):
            image.unlink()
        raise
