"""Byte sizes as settings write them ("2g", "300M", "1.5GiB"), read the same way everywhere."""

from __future__ import annotations

import re

from runtime.errors import ConfigError

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from an int or a text such as "300M", "1.5GiB", "256g", "1048576" (binary units).

    For settings (`storage_pool_size` from the environment); `ConfigError` when unreadable.
    """
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"a size cannot be negative: {value}")
        return value
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ConfigError(f"not a size: {value!r} (write bytes, or a number with K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])



def describe(size: int) -> str:
    """A size for messages: "320 MiB", "1.5 GiB"."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            return f"{size / unit:.4g} {name}"
    return f"{size} bytes"
