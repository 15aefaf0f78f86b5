"""The internal network of allowlisted sandboxes, and the rules that leave them the proxy only.

The network is `internal` (no route off the bridge) and keeps inter-container traffic *on*: with
`enable_icc=false` a sandbox could not reach the proxy either. So peers are kept apart by our own
tagged rules in DOCKER-USER (the bridge's traffic passes it: the engine turns on
bridge-nf-call-iptables): established flows, and new ones to the proxy's port, return to the
engine's rules; every other packet between two addresses on the bridge is dropped. The host is
off limits as for the sandbox network (an INPUT drop on the bridge: an internal network's
containers still route to the gateway address), and so are metadata and published ports.

The subnet is configured (`egress_subnet`) because the proxy needs a fixed address, which the
engine grants only on a subnet given at creation: its second address goes to the proxy, the
upper half of it to the sandboxes, so a sandbox can never hold the proxy's address.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlparse

import docker
import docker.errors
import docker.types
from docker.models.networks import Network

from runtime.backends.docker import firewall
from runtime.backends.docker.firewall import Firewall, FirewallError, Rule
from runtime.backends.docker.network import (
    BRIDGE_NAME_OPTION,
    ICC_OPTION,
    bridge_interface_name,
    find_network,
    sandbox_rules,
)
from runtime.config import EgressSettings
from runtime.errors import NetworkPolicyError
from runtime.labels import MANAGED, ROLE

PROXY_PORT = EgressSettings.PROXY_PORT
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Addresses:
    """Where things sit on the egress subnet."""

    subnet: str
    gateway: str
    proxy: str
    sandboxes: str  # the range the engine hands out to sandboxes

    @classmethod
    def of(cls, settings: EgressSettings) -> Addresses:
        net = ipaddress.ip_network(settings.subnet)
        upper = list(net.subnets(prefixlen_diff=1))[1]
        proxy = str(urlparse(settings.proxy_url).hostname)  # the address the core gives sandboxes
        return cls(str(net), str(net.network_address + 1), proxy, str(upper))

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy}:{PROXY_PORT}"


def intra_bridge_rules(interface: str, proxy: str) -> tuple[Rule, ...]:
    """DOCKER-USER rules for traffic between two addresses of the bridge, top to bottom."""
    between = ("-i", interface, "-o", interface)
    return (
        Rule(firewall.DOCKER_USER, (*between, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"), "RETURN"),
        Rule(firewall.DOCKER_USER, (*between, "-d", proxy, "-p", "tcp", "--dport", str(PROXY_PORT)), "RETURN"),
        Rule(firewall.DOCKER_USER, between),
    )


def ensure_egress_network(client: docker.DockerClient, name: str, addresses: Addresses) -> tuple[str, list[str]]:
    """The network exists as the policy wants it, and its rules are installed: (bridge, problems)."""
    network = _ensure(client, name, addresses)
    ipam = (network.attrs.get("IPAM") or {}).get("Config") or [{}]
    if ipam[0].get("Subnet") != addresses.subnet:
        raise NetworkPolicyError(
            f"Network {name!r} has subnet {ipam[0].get('Subnet')!r}, not egress_subnet {addresses.subnet!r}, and "
            "still has containers attached; destroy them (or set egress_subnet to the network's) and start again."
        )
    interface = str((network.attrs.get("Options") or {}).get(BRIDGE_NAME_OPTION))
    return interface, _install_rules(interface, addresses.proxy)


def _wanted_options(name: str) -> dict[str, str]:
    return {ICC_OPTION: "true", BRIDGE_NAME_OPTION: bridge_interface_name(name)}


def _ensure(client: docker.DockerClient, name: str, addresses: Addresses) -> Network:
    network = find_network(client, name)
    if network is None:
        pool = docker.types.IPAMPool(subnet=addresses.subnet, gateway=addresses.gateway, iprange=addresses.sandboxes)
        try:
            return client.networks.create(
                name, driver="bridge", internal=True, options=_wanted_options(name),
                ipam=docker.types.IPAMConfig(pool_configs=[pool]), labels={MANAGED: "true", ROLE: "egress"},
                check_duplicate=True,
            )
        except docker.errors.APIError as err:
            network = find_network(client, name)  # another process may have won the race
            if network is None:
                raise NetworkPolicyError(
                    f"the egress network {name!r} could not be created on {addresses.subnet}: {err.explanation}; "
                    "if another network uses those addresses, set egress_subnet (THEAPPAPP_EGRESS_SUBNET)"
                ) from err
    labels = network.attrs.get("Labels") or {}
    options = network.attrs.get("Options") or {}
    if labels.get(MANAGED) != "true" or not network.attrs.get("Internal"):
        raise NetworkPolicyError(
            f"Network {name!r} exists but is not an internal network made by this sandbox; remove it or set "
            "egress_network_name."
        )
    if any(options.get(k) != v for k, v in _wanted_options(name).items()):
        raise NetworkPolicyError(f"Network {name!r} has other bridge options than the egress policy's; remove it.")
    return network


def _install_rules(interface: str, proxy: str) -> list[str]:
    """Install the rules (idempotently); the problems, as sentences, when that could not be done."""
    binary = firewall.locate("iptables")
    if binary is None:
        return ["iptables was not found, so allowlisted sandboxes are not kept apart or off the host; "
                "install iptables and run as root."]
    fw = Firewall(binary)
    ordered = intra_bridge_rules(interface, proxy)
    rules = [*sandbox_rules(interface), *ordered]
    try:
        with firewall.rules_lock():
            fw.ensure_docker_user_chain()
            for rule in sandbox_rules(interface):
                fw.ensure(rule)
            # Their order matters (returns above the drop), and each goes to the top of the chain: when one
            # is missing, all three are put back bottom-up.
            if not all(fw.exists(rule) for rule in ordered):
                for rule in ordered:
                    fw.remove(rule)
                for rule in reversed(ordered):
                    fw.ensure(rule)
            missing = [rule for rule in rules if not fw.exists(rule)]
            hooked = fw.docker_user_hooked()
    except FirewallError as err:
        why = "this process may not change the firewall (run as root)" if err.denied else str(err)
        return [f"the egress network's firewall rules were not installed because {why}; allowlisted sandboxes "
                "could reach each other and the host."]
    problems = [f"firewall rule missing after install: {rule.describe()}" for rule in missing]
    if not hooked:
        problems.append("the FORWARD chain does not jump to DOCKER-USER, so allowlisted sandboxes are not kept apart.")
    if not bridged_traffic_filtered():
        problems.append("traffic between two addresses of a bridge skips iptables here (bridge-nf-call-iptables is "
                        "off), so allowlisted sandboxes are not kept apart: `modprobe br_netfilter && sysctl -w "
                        "net.bridge.bridge-nf-call-iptables=1`")
    return problems


def bridged_traffic_filtered(path: str = BRIDGE_NF) -> bool:
    """The intra-bridge DROP only works when bridged packets pass through iptables."""
    try:
        with open(path, encoding="ascii") as setting:
            return setting.read().strip() == "1"
    except OSError:
        return False
