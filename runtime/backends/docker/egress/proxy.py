"""The egress proxy's container: one per egress network on an engine, shared by every manager.

Made from the toolkit's `egress-proxy` image (Squid; languages.yaml `services`), hardened like a
sandbox (read-only root, no capabilities, no new privileges, its own unprivileged user, a pids and
memory limit), on the *sandbox* network first, so its own way out is confined by that network's
firewall (no host, no metadata, no peers), then on the egress network at its fixed address, and on
any further upstream networks the configuration names. Its policy directory is bound read-only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import docker
import docker.errors
from docker.types import LogConfig, Mount

from runtime.backends.docker import calls
from runtime.backends.docker.egress.network import Addresses
from runtime.errors import EngineError, ImageMissing

POLICY_MOUNT = "/etc/theappapp/egress"  # where squid.conf and the ACL helper look for it
READY_SECONDS = 20.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxySpec:
    name: str
    image: str
    egress_network: str
    sandbox_network: str
    upstream_networks: tuple[str, ...]
    addresses: Addresses
    policy_dir: str
    labels: dict[str, str]


def proxy_name(egress_network: str) -> str:
    return f"{egress_network}-proxy"


def ensure_running(api: docker.APIClient, spec: ProxySpec) -> str:
    """The proxy's container id, running and answering; created or started as needed."""
    return start(api, spec)[0]


def start(api: docker.APIClient, spec: ProxySpec) -> tuple[str, bool]:
    """(the proxy's container id, whether it had to be started): created or started as needed."""
    attrs = calls.inspect_container(api, spec.name)
    if attrs is not None and (attrs.get("Config") or {}).get("Image") != spec.image:
        log.info("replacing egress proxy %s: it runs %s, wanted %s", spec.name, attrs["Config"]["Image"], spec.image)
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(attrs["Id"], force=True)
        attrs = None
    if attrs is None:
        container_id = _create(api, spec)
    else:
        container_id = str(attrs["Id"])
        if (attrs.get("State") or {}).get("Running"):
            return container_id, False
    started = int(time.time())
    try:
        api.start(container_id)
    except docker.errors.APIError as err:
        raise EngineError(f"the egress proxy {spec.name} did not start: {err.explanation}") from err
    _wait_ready(api, container_id, spec.name, started)
    return container_id, True


def reconfigure(api: docker.APIClient, name: str) -> None:
    """Squid reads its hosts file again on SIGHUP (the engine's init passes it on)."""
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        api.kill(name, "HUP")


def _create(api: docker.APIClient, spec: ProxySpec) -> str:
    host_config = api.create_host_config(
        read_only=True,
        tmpfs={"/run/squid": "rw,nosuid,nodev,noexec,size=16m,mode=0700,uid=13,gid=13"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        init=True,
        pids_limit=256,
        mem_limit="512m",
        memswap_limit="512m",
        network_mode=spec.sandbox_network,
        mounts=[Mount(POLICY_MOUNT, spec.policy_dir, type="bind", read_only=True)],
        # The audit comes from this log: bounded, so a flood of requests cannot fill the host's disk.
        log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "2"}),
    )
    try:
        created = api.create_container(
            spec.image, name=spec.name, labels=spec.labels, host_config=host_config, detach=True,
            networking_config=api.create_networking_config(
                {spec.sandbox_network: api.create_endpoint_config()}),  # type: ignore[arg-type]  # stub is wrong
        )
    except docker.errors.ImageNotFound as err:
        raise ImageMissing(f"image {spec.image} is not on this engine; build it with: nox -s build -- egress-proxy") \
            from err
    except docker.errors.APIError as err:
        if err.status_code == 409:  # another manager made it first
            found = calls.inspect_container(api, spec.name)
            if found is not None:
                return str(found["Id"])
        raise EngineError(f"the egress proxy {spec.name} could not be created: {err.explanation}") from err
    container_id = str(created["Id"])
    try:
        api.connect_container_to_network(container_id, spec.egress_network, ipv4_address=spec.addresses.proxy)
        for network in spec.upstream_networks:
            api.connect_container_to_network(container_id, network)
    except docker.errors.APIError as err:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(container_id, force=True)
        raise EngineError(f"the egress proxy {spec.name} could not join its networks: {err.explanation}") from err
    return container_id


def _wait_ready(api: docker.APIClient, container_id: str, name: str, since: int) -> None:
    """Until squid says it accepts connections (its cache log, on stderr, since this start: the log keeps
    earlier runs' lines), or the container ends."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        text = api.logs(container_id, stdout=False, stderr=True, since=since).decode("utf-8", "replace")
        if "Will not bump SSL" in text:  # peeking disabled: every CONNECT would pass unchecked
            api.stop(container_id, timeout=1)
            raise EngineError(f"the egress proxy {name} cannot peek at TLS handshakes: {text.strip()[-300:]}")
        if "Accepting SSL bumped HTTP Socket connections" in text:
            return
        state = (calls.inspect_container(api, container_id) or {}).get("State") or {}
        if not state.get("Running"):
            raise EngineError(f"the egress proxy {name} exited ({state.get('ExitCode')}): {text.strip()[-500:]}")
        time.sleep(0.05)
    raise EngineError(f"the egress proxy {name} did not accept connections within {READY_SECONDS:.0f} s")
