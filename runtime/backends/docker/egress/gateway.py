"""`DockerEgress`: the `EgressGateway` protocol on a local Docker engine.

Allowlisted sandboxes join an internal network (`network.py`) whose only reachable address is the
proxy (`proxy.py`); the proxy knows each sandbox by its address there, from the policy file the
gateway writes for it (`policies.py`), and logs every connection, which the gateway reads back
(`follower.py`, `audit.py`). All of it needs root on the engine's own host (iptables, the policy
directory the proxy mounts): with a remote engine or without root, `ensure` says so and is not ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import docker

from runtime import labels
from runtime.backends.docker import calls
from runtime.backends.docker.egress import network, policies, proxy
from runtime.backends.docker.egress.follower import LogFollower
from runtime.backends.docker.engine import Engine
from runtime.backends.docker.network import ensure_sandbox_network
from runtime.backends.egress import PROXY_SERVICE, EgressListener, EgressPolicy, EgressRecord, EgressStatus
from runtime.config import EgressSettings
from runtime.errors import NetworkPolicyError, SandboxError
from runtime.registry.fields import IMAGE_PREFIX

log = logging.getLogger(__name__)
LOG_READ_TIMEOUT = 24 * 3600  # a quiet proxy writes nothing for hours; a stopped one ends the stream at once


class DockerEgress:
    def __init__(self, engine: Callable[[], Engine], settings: EgressSettings, sandbox_network: str,
                 image_tag: str, policy_root: Path = policies.DEFAULT_ROOT) -> None:
        self._engine = engine
        self.settings = settings
        self.addresses = network.Addresses.of(settings)
        self.policies = policies.PolicyDirectory(settings.network_name, policy_root)
        self._sandbox_network = sandbox_network
        self._image = f"{IMAGE_PREFIX}{PROXY_SERVICE}:{image_tag}"
        self._labels: dict[str, str] = {}
        self._listeners: list[EgressListener] = []
        self._follower: LogFollower | None = None
        self._addresses: dict[str, str] = {}  # container id -> its address on the egress network
        self._status: EgressStatus | None = None

    def _spec(self) -> proxy.ProxySpec:
        return proxy.ProxySpec(
            name=proxy.proxy_name(self.settings.network_name), image=self._image,
            egress_network=self.settings.network_name, sandbox_network=self._sandbox_network,
            upstream_networks=self.settings.upstream_networks, addresses=self.addresses,
            policy_dir=str(self.policies.path),
            labels={**self._labels, labels.MANAGED: "true", labels.ROLE: "egress-proxy",
                    labels.EGRESS_NETWORK: self.settings.network_name},
        )

    def _not_ready(self, *problems: str) -> EgressStatus:
        self._status = EgressStatus(False, self.settings.network_name, self.addresses.proxy_url, problems)
        return self._status

    async def ensure(self, owner_labels: Mapping[str, str] | None = None) -> EgressStatus:
        if owner_labels:
            self._labels = dict(owner_labels)
        engine = self._engine()
        if engine.endpoint()[0] != "unix":
            return self._not_ready(f"egress allowlists need the engine on this host (its firewall and a directory the "
                                   f"proxy mounts); {engine.where} is not a local socket.")
        if os.geteuid() != 0:
            return self._not_ready("egress allowlists need root (iptables rules and the proxy's policy directory "
                                   f"{self.policies.path}); run the manager as root.")
        try:
            api = (await engine.connect()).api
            client = engine.client
            # The proxy's own way out is the sandbox network, confined by its rules (no host, no metadata,
            # no peers), whatever mode the tasks use: made and checked here before the proxy joins it.
            upstream = await engine.call(ensure_sandbox_network, client, self._sandbox_network, install_firewall=True)
            if not (upstream.host_blocked and upstream.metadata_blocked):
                return self._not_ready(f"the proxy's network {self._sandbox_network} is not confined: "
                                       + "; ".join(upstream.problems))
            changed = await asyncio.to_thread(self.policies.prepare, self.settings.hosts)
            self._addresses.update({cid: ip for ip, cid in (await asyncio.to_thread(self.policies.addresses)).items()})
            interface, problems = await engine.call(network.ensure_egress_network, client, self.settings.network_name,
                                                    self.addresses)
            await engine.call(proxy.ensure_running, api, self._spec())
            if changed:
                await engine.call(proxy.reconfigure, api, proxy.proxy_name(self.settings.network_name))
        except (OSError, SandboxError) as err:  # never raises: what is missing is the status's problem
            return self._not_ready(str(err))
        self._status = EgressStatus(not problems, self.settings.network_name, self.addresses.proxy_url, tuple(problems))
        if problems:
            log.warning("egress network %s (%s) is NOT confined: %s", self.settings.network_name, interface,
                        "; ".join(problems))
        return self._status

    @property
    def status(self) -> EgressStatus | None:
        return self._status

    async def allow(self, container_id: str, policy: EgressPolicy) -> None:
        engine = self._engine()
        attrs = await engine.call(calls.inspect_container, (await engine.connect()).api, container_id)
        networks = ((attrs or {}).get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(self.settings.network_name) or {}).get("IPAddress")
        if not address:
            raise NetworkPolicyError(f"container {container_id[:12]} is not on the egress network "
                                     f"{self.settings.network_name}")
        try:
            await asyncio.to_thread(self.policies.write, address, container_id, policy)
        except OSError as err:
            raise NetworkPolicyError(f"cannot write the egress policy of {container_id[:12]}: {err}") from err
        self._addresses[container_id] = address

    def revoke(self, container_id: str) -> None:
        # Only containers this gateway gave a policy (or found one for at `ensure`): no file IO for others.
        address = self._addresses.pop(container_id, None)
        if address is None:
            return
        try:
            self.policies.remove(container_id, address)
        except OSError as err:  # the removal goes on; a stale policy names a container that no longer exists
            log.warning("could not remove the egress policy of %s at %s: %s", container_id[:12], address, err)

    def listen(self, listener: EgressListener) -> None:
        self._listeners.append(listener)
        if self._follower is None:
            self._follower = LogFollower(self._log_client, lambda api: proxy.start(api, self._spec()), self._record)
            self._follower.start()

    def _log_client(self) -> docker.APIClient:
        """A client of its own for the log stream: its reads wait out a quiet proxy (the engine's has a deadline)."""
        return docker.APIClient(base_url=self._engine().where, timeout=LOG_READ_TIMEOUT)

    def _record(self, record: EgressRecord) -> None:
        for listener in list(self._listeners):
            listener(record)

    @property
    def restarts(self) -> int:
        """How often the proxy was found stopped and started again while listening."""
        return self._follower.restarts if self._follower is not None else 0

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        self._listeners.clear()
