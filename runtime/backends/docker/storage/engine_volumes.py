"""The Docker side of quota volumes: what a Docker volume of a name is, and making one that binds a mountpoint.

A quota volume is, to Docker, a `local` volume with the options type=none, o=bind,
device=<mountpoint>: mounting it binds our mounted filesystem. Docker keeps a volume's options
from its creation and silently ignores the ones a later mount asks for, so a volume that exists
without them (made before quotas were on) stays a plain volume; what a plain volume holds is
measured by walking it. All blocking: docker-py calls run through `Engine.call`, the walk in a thread.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from typing import Literal, NamedTuple

import docker
import docker.errors
from docker.types import DriverConfig

from runtime.errors import EngineError, InvalidRequest

Kind = Literal["absent", "quota", "plain"]


class Device(NamedTuple):
    """A quota volume's mounted filesystem as a container gets it.

    `direct`: bound straight from the host path. Docker's own route (its `local` volume with bind
    options) mounts the volume again at every container start (~18 ms, measured in
    benchmarks/bench_storage.py) but copies the image's files into an empty volume on first use,
    as with a named volume; so a volume's first container takes that route (a fresh Go cache is
    filled from the image), and every later one is bound directly.
    """

    path: str
    direct: bool


def bind_options(device: str) -> dict[str, str]:
    return {"type": "none", "o": "bind", "device": device}


def driver_config(device: str) -> DriverConfig:
    """What a mount of a quota volume must carry: if the volume's definition went missing, Docker
    makes it again from this, bound to the quota filesystem (not a plain volume with no quota)."""
    return DriverConfig("local", bind_options(device))


def kind(attrs: Mapping[str, object] | None, device: str) -> Kind:
    """Whether a volume (its inspect attributes; None: there is none) binds `device`, or is plain."""
    if attrs is None:
        return "absent"
    options = attrs.get("Options") or {}
    if attrs.get("Driver") == "local" and isinstance(options, dict) and options.get("device") == device \
            and options.get("o") == "bind":
        return "quota"
    return "plain"


def inspect(api: docker.APIClient, name: str) -> dict[str, object] | None:
    try:
        attrs: dict[str, object] = api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    return attrs


def create_bound(api: docker.APIClient, name: str, device: str, labels: Mapping[str, str]) -> None:
    """A new Docker volume binding `device`; `InvalidRequest` if one of that name exists.

    Docker's create returns an existing volume of the name as if it had made it: checked first.
    """
    if inspect(api, name) is not None:
        raise InvalidRequest(f"volume {name} already exists")
    try:
        api.create_volume(name, driver="local", driver_opts=bind_options(device), labels=dict(labels) or None)
    except docker.errors.APIError as err:
        raise EngineError(f"volume {name} could not be created: {err.explanation or err}") from err


def plain_usage(attrs: Mapping[str, object], budget: float = 30.0) -> int:
    """Bytes a plain volume holds on the host's disk (what `docker system df -v` counts), by walking it.

    Only plain volumes need this (a quota volume's filesystem counts for itself). Unreadable
    entries are skipped; past `budget` seconds, `EngineError` rather than an endless walk.
    """
    top = attrs.get("Mountpoint")
    if not isinstance(top, str) or not top:
        return 0
    deadline, total, seen, pending = time.monotonic() + budget, 0, set(), [top]
    while pending:
        if time.monotonic() > deadline:
            raise EngineError(f"volume {attrs.get('Name')} is too big to measure within {budget:.0f}s")
        try:
            with os.scandir(pending.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:  # hard links count once
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                pending.append(entry.path)
    return total
