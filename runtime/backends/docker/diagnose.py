"""The Docker engine's own `doctor` lines: its version's known faults, the sandbox network's policy, disk.

Checks only look: nothing is created or changed.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

import docker
import docker.errors

from runtime import labels
from runtime.backends.base import Diagnosis
from runtime.errors import SandboxError

GiB = 1024**3
DISK_FAIL_BYTES = 2 * GiB
DISK_WARN_BYTES = 10 * GiB


def engine_checks(client: docker.DockerClient, network_name: str, network_mode: str) -> list[Diagnosis]:
    """Blocking: version, network policy and disk, in that order."""
    info: dict[str, Any] = client.info()
    version = str(client.version().get("Version", "?"))
    root = str(info.get("DockerRootDir") or "/var/lib/docker")
    local = str(getattr(client.api, "base_url", "")).startswith("http+docker://")  # a unix socket: this host
    return [engine_version(version, info), network_policy(client, network_name, network_mode), disk(root, local)]


def engine_version(version: str, info: dict[str, Any]) -> Diagnosis:
    detail = f"Docker {version} ({info.get('OperatingSystem', '?')}, cgroup v{info.get('CgroupVersion', '?')})"
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    if len(numbers) == 3 and numbers[:2] == [20, 10] and numbers[2] < 27:
        # Seen here: under heavy container churn every API call then hangs until dockerd restarts.
        return Diagnosis(
            "WARN", "engine",
            f"{detail}: its network controller can deadlock when containers start and stop at a high "
            "rate (moby/moby#46661; fixed on the 20.10 branch after 20.10.24 by moby/libnetwork#2679); "
            "the runtime's deadlines turn the hang into EngineUnavailable errors",
            "use a newer engine where one can be installed; otherwise restart dockerd when calls time out",
        )
    return Diagnosis("PASS", "engine", detail)


def network_policy(client: docker.DockerClient, name: str, mode: str) -> Diagnosis:
    if mode == "none":
        return Diagnosis("PASS", "network policy", "sandboxes have no network (THEAPPAPP_NETWORK=none)")
    if not any(n.name == name for n in client.networks.list(names=[name])):  # names= matches substrings
        return Diagnosis("WARN", "network policy", f"network {name!r} does not exist yet (the manager creates it "
                         "on startup), so its isolation could not be checked",
                         "run once: theappapp-sandbox run python -c 'print(1)', then doctor again")
    from runtime.backends.docker.network import (
        BRIDGE_NAME_OPTION,
        ICC_OPTION,
        bridge_interface_name,
        ensure_sandbox_network,
    )

    network = next(n for n in client.networks.list(names=[name]) if n.name == name)
    options = network.attrs.get("Options") or {}
    if (network.attrs.get("Labels") or {}).get(labels.MANAGED) != "true":
        return Diagnosis("FAIL", "network policy", f"network {name!r} exists but was not made by the sandbox",
                         "remove it, or set THEAPPAPP_NETWORK_NAME to another name")
    if options.get(ICC_OPTION) != "false" or options.get(BRIDGE_NAME_OPTION) != bridge_interface_name(name):
        return Diagnosis("FAIL", "network policy", f"network {name!r} does not have the sandbox options "
                         "(icc off, fixed bridge name)", "destroy its containers; the manager recreates it at startup")
    try:
        # The network exists with the right options, so this only checks (never installs) the rules.
        status = ensure_sandbox_network(client, name, install_firewall=False)
    except SandboxError as err:
        return Diagnosis("FAIL", "network policy", str(err), f"remove or rename the network {name!r}")
    if status.problems:
        return Diagnosis("FAIL", "network policy", " ".join(status.problems),
                         "run the manager as root with iptables available (rules are installed at startup)")
    return Diagnosis("PASS", "network policy", f"{name}: host blocked, metadata blocked, sandboxes kept apart")


def disk(root: str, local: bool) -> Diagnosis:
    """Free space where the engine keeps images, containers and volumes (`root`), if it is on this host."""
    if not local:
        return Diagnosis("WARN", "disk", f"the engine is remote; {root} cannot be checked from here",
                         "check free space on the engine's host")
    try:
        usage = shutil.disk_usage(root)
    except OSError as err:
        return Diagnosis("WARN", "disk", f"cannot read {root}: {err.strerror}", "run doctor as a user who can read it")
    free = usage.free / GiB
    detail = f"{free:.1f} GiB free of {usage.total / GiB:.1f} GiB at {root}"
    fix = "free space: `docker image prune`, `theappapp-sandbox cleanup`, or remove unused project volumes"
    if usage.free < DISK_FAIL_BYTES:
        return Diagnosis("FAIL", "disk", detail, fix)
    if usage.free < DISK_WARN_BYTES:
        return Diagnosis("WARN", "disk", detail, fix)
    return Diagnosis("PASS", "disk", detail)
