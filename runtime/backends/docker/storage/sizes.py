"""Byte counts of the storage: quotas, the images behind them, the pool's default size.

A quota volume is an XFS filesystem in an image file. XFS keeps its journal (the log) inside
the filesystem and does not count it in the size `df` shows, and mkfs.xfs (6.1) wants the log
at least 64 MiB and the whole filesystem at least 300 MiB. So the image of a volume is its
quota plus a log of exactly `LOG_SIZE`: `df` inside the sandbox then shows the quota itself,
and the quota can always be read back from the image's size, mounted or not.
"""

from __future__ import annotations

import math

from runtime.errors import InvalidRequest

# The units and readers every setting uses, under the names the storage's modules know them by.
from runtime.units import GiB as GiB
from runtime.units import KiB as KiB
from runtime.units import MiB as MiB
from runtime.units import TiB as TiB
from runtime.units import describe as describe
from runtime.units import parse_size as parse_size

LOG_SIZE = 64 * MiB  # mkfs.xfs's smallest log; given explicitly so the image's overhead is fixed
MIN_QUOTA = 300 * MiB  # mkfs.xfs refuses a filesystem under 300 MiB
MAX_QUOTA = 64 * TiB  # well inside XFS's limits; anything larger is a typo
QUOTA_STEP = MiB  # quotas are whole MiB: a multiple of every XFS block size, so growfs uses all of it

POOL_CAP = 256 * GiB  # the default pool is at most this big...
POOL_SHARE = 0.9  # ...and at most this share of the free space where it lives (it is sparse)
POOL_STEP = GiB
MIN_POOL = 1 * GiB

def round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def check_quota(quota: object) -> int:
    """The quota rounded up to whole MiB, or `InvalidRequest` saying what is allowed."""
    if isinstance(quota, bool) or not isinstance(quota, int):
        raise InvalidRequest(f"a disk quota is a number of bytes, not {quota!r}")
    if quota < MIN_QUOTA:
        raise InvalidRequest(
            f"a disk quota of {quota} bytes is below the smallest possible, {MIN_QUOTA} bytes (300 MiB): "
            "each project volume is its own XFS filesystem, and XFS refuses filesystems under 300 MiB"
        )
    if quota > MAX_QUOTA:
        raise InvalidRequest(f"a disk quota of {quota} bytes is over the largest allowed, {MAX_QUOTA} (64 TiB)")
    return round_up(quota, QUOTA_STEP)


def image_size(quota: int) -> int:
    """The size of the image file holding a filesystem of `quota` bytes (already checked)."""
    return quota + LOG_SIZE


def quota_of(image_bytes: int) -> int:
    """The quota an image of this size holds: the size its filesystem reports."""
    return max(0, image_bytes - LOG_SIZE)


def default_pool_size(free_bytes: int) -> int:
    """The pool's size when none is set: min(256 GiB, 90% of the free space), in whole GiB."""
    return min(POOL_CAP, math.floor(free_bytes * POOL_SHARE / POOL_STEP) * POOL_STEP)

