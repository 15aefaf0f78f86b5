"""`theappapp-sandbox doctor`: one PASS / WARN / FAIL line per thing the sandbox needs, with the fix.

FAIL means sandboxes cannot run safely (no engine, a configured runtime missing, the
network not isolated, a full disk); WARN means something is limited (a language's image
not built, little disk left). Checks only look: nothing is created or changed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import docker
import docker.errors

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.errors import SandboxError
from runtime.ops.cleanup import engine_client
from runtime.registry import Registry, get_registry

Status = Literal["PASS", "WARN", "FAIL"]
GiB = 1024**3
DISK_FAIL_BYTES = 2 * GiB
DISK_WARN_BYTES = 10 * GiB
ENGINE_FIX = (
    "start the engine (`bash scripts/start-docker-engine.sh`, or `systemctl start docker`), "
    "or point DOCKER_HOST at one"
)


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status}  {self.name}: {self.detail}"
        return line + (f"\n      fix: {self.fix}" if self.fix and self.status != "PASS" else "")


def run_checks(config: RuntimeConfig, registry_loader: Callable[[], Registry] | None = None) -> Iterator[Check]:
    """Each check as it completes (so the CLI prints progress line by line)."""
    try:
        registry = (registry_loader or (lambda: get_registry(config.registry_path)))()
        yield Check("PASS", "registry", f"{len(registry.languages)} languages: {', '.join(registry.languages)}")
    except SandboxError as err:
        registry = None
        yield Check("FAIL", "registry", str(err), "fix languages.yaml, or set THEAPPAPP_REGISTRY to a valid one")
    try:
        client = engine_client(config)
        info: dict[str, Any] = client.info()
        version = client.version().get("Version", "?")
    except (SandboxError, docker.errors.DockerException) as err:
        yield Check("FAIL", "engine", f"not reachable: {err}", ENGINE_FIX)
        yield Check("FAIL", "remaining checks", "skipped: they need the engine", ENGINE_FIX)
        return
    try:
        yield _engine(version, info)
        if registry is not None:
            yield from _images(client, registry, config)
        yield _runtimes(info, config)
        yield _network(client, config)
        yield _disk(info, client)
    finally:
        client.close()


def _engine(version: str, info: dict[str, Any]) -> Check:
    detail = f"Docker {version} ({info.get('OperatingSystem', '?')}, cgroup v{info.get('CgroupVersion', '?')})"
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    if len(numbers) == 3 and numbers[:2] == [20, 10] and numbers[2] < 27:
        # Seen here: under heavy container churn every API call then hangs until dockerd restarts.
        return Check(
            "WARN", "engine",
            f"{detail}: its network controller can deadlock when containers start and stop at a high "
            "rate (moby/moby#46661; fixed on the 20.10 branch after 20.10.24 by moby/libnetwork#2679); "
            "the runtime's deadlines turn the hang into EngineUnavailable errors",
            "use a newer engine where one can be installed; otherwise restart dockerd when calls time out",
        )
    return Check("PASS", "engine", detail)


def _images(client: docker.DockerClient, registry: Registry, config: RuntimeConfig) -> Iterator[Check]:
    for name, lang in registry.languages.items():
        ref = f"{lang.image}:{config.image_tag}"
        try:
            image = client.images.get(ref).attrs
        except docker.errors.ImageNotFound:
            yield Check("WARN", f"image {name}", f"{ref} is not built; {lang.display_name} cannot run",
                        f"nox -s build -- {name}")
            continue
        values = (image.get("Config") or {}).get("Labels") or {}
        size = int(image.get("Size") or 0) / 1024**2
        missing = values.get(labels.IMAGE_MISSING_OPTIONAL)
        if missing:
            yield Check("WARN", f"image {name}", f"{ref} ({size:.0f} MB) was built without: {missing}",
                        f"make the sources reachable and rebuild: nox -s build -- {name}")
        else:
            yield Check("PASS", f"image {name}", f"{ref} ({size:.0f} MB)")


def _runtimes(info: dict[str, Any], config: RuntimeConfig) -> Check:
    available = sorted(info.get("Runtimes") or {})
    default = str(info.get("DefaultRuntime") or "runc")
    wanted = config.runtime or default
    listed = f"{', '.join(available)} (default {default})"
    if wanted not in available:
        return Check("FAIL", "OCI runtime", f"{wanted!r} is configured but the engine has only {listed}",
                     f"install {wanted} and register it under \"runtimes\" in /etc/docker/daemon.json, "
                     "restart the engine; or unset THEAPPAPP_RUNTIME")
    extra = "" if "runsc" in available else "; gVisor (runsc) not installed, optional stronger isolation"
    return Check("PASS", "OCI runtime", f"using {wanted}; available: {listed}{extra}")


def _network(client: docker.DockerClient, config: RuntimeConfig) -> Check:
    name = config.network_name
    if config.network == "none":
        return Check("PASS", "network policy", "sandboxes have no network (THEAPPAPP_NETWORK=none)")
    if not any(n.name == name for n in client.networks.list(names=[name])):  # names= matches substrings
        return Check("WARN", "network policy", f"network {name!r} does not exist yet (the manager creates it "
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
        return Check("FAIL", "network policy", f"network {name!r} exists but was not made by the sandbox",
                     "remove it, or set THEAPPAPP_NETWORK_NAME to another name")
    if options.get(ICC_OPTION) != "false" or options.get(BRIDGE_NAME_OPTION) != bridge_interface_name(name):
        return Check("FAIL", "network policy", f"network {name!r} does not have the sandbox options "
                     "(icc off, fixed bridge name)", "destroy its containers; the manager recreates it at startup")
    try:
        # The network exists with the right options, so this only checks (never installs) the rules.
        status = ensure_sandbox_network(client, name, install_firewall=False)
    except SandboxError as err:
        return Check("FAIL", "network policy", str(err), f"remove or rename the network {name!r}")
    if status.problems:
        return Check("FAIL", "network policy", " ".join(status.problems),
                     "run the manager as root with iptables available (rules are installed at startup)")
    return Check("PASS", "network policy", f"{name}: host blocked, metadata blocked, sandboxes kept apart")


def _disk(info: dict[str, Any], client: docker.DockerClient) -> Check:
    root = str(info.get("DockerRootDir") or "/var/lib/docker")
    base_url = str(getattr(client.api, "base_url", ""))
    if not base_url.startswith("http+docker://"):
        return Check("WARN", "disk", f"the engine is remote; {root} cannot be checked from here",
                     "check free space on the engine's host")
    try:
        usage = shutil.disk_usage(root)
    except OSError as err:
        return Check("WARN", "disk", f"cannot read {root}: {err.strerror}", "run doctor as a user who can read it")
    free = usage.free / GiB
    detail = f"{free:.1f} GiB free of {usage.total / GiB:.1f} GiB at {root}"
    fix = "free space: `docker image prune`, `theappapp-sandbox cleanup`, or remove unused project volumes"
    if usage.free < DISK_FAIL_BYTES:
        return Check("FAIL", "disk", detail, fix)
    if usage.free < DISK_WARN_BYTES:
        return Check("WARN", "disk", detail, fix)
    return Check("PASS", "disk", detail)
