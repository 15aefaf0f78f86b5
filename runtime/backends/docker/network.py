"""The sandbox network: a dedicated bridge where a sandbox reaches the outside but not the
host, not other sandboxes and not 169.254.169.254.

Peers are kept apart by the engine (`enable_icc=false`); the host and metadata by tagged
iptables rules on the bridge's fixed interface name (see `runtime.backends.docker.firewall`). Failing to
install rules never raises: the status says what is missing and what to do about it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from pathlib import Path

import docker
import docker.errors
from docker.models.networks import Network

from runtime.backends.base import NetworkPolicyStatus
from runtime.backends.docker import firewall
from runtime.backends.docker.firewall import Firewall, FirewallError, Rule
from runtime.errors import NetworkPolicyError
from runtime.labels import MANAGED

DEFAULT_NETWORK = "theappapp-sandbox"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_IFNAMSIZ = 15  # Linux interface names are at most 15 bytes
# Where the engine takes its upstream resolvers from (the second when systemd-resolved's stub is in use).
RESOLV_CONF_FILES = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")

log = logging.getLogger(__name__)


BRIDGE_PREFIX = "tapp-"  # our bridges' interface names; rule pruning touches no other


def bridge_interface_name(network_name: str) -> str:
    """A stable, valid interface name for the network's bridge: `tapp-` + 10 hex digits.

    Stable so that rules keyed on it survive engine restarts (the engine recreates the
    bridge under the same name) and so a second network of the same name cannot be created.
    """
    digest = hashlib.sha256(network_name.encode()).hexdigest()
    return (BRIDGE_PREFIX + digest)[:_IFNAMSIZ]


def sandbox_rules(interface: str) -> tuple[Rule, ...]:
    """The IPv4 rules that confine a sandbox bridge, in the order they are reported."""
    return (
        firewall.host_rule(interface),
        firewall.metadata_rule(interface),
        firewall.published_port_rule(interface),
    )


def ensure_sandbox_network(
    client: docker.DockerClient, name: str = DEFAULT_NETWORK, *, install_firewall: bool = True
) -> NetworkPolicyStatus:
    """Create (idempotently) the sandbox bridge, then install or verify its firewall rules."""
    network = _ensure_network(client, name)
    options = network.attrs.get("Options") or {}
    interface = _interface(network)
    icc_disabled = options.get(ICC_OPTION) == "false"
    ipv6 = bool(network.attrs.get("EnableIPv6"))
    problems: list[str] = []
    if not icc_disabled:
        problems.append(
            f"Network {name!r} lets sandboxes reach each other ({ICC_OPTION} is not false) and still has "
            "containers attached, so it was not recreated; destroy those containers and start again."
        )
    host_blocked, metadata_blocked, fw_problems = _apply_firewall(name, interface, ipv6=ipv6, install=install_firewall)
    if install_firewall and host_blocked:
        prune_stale_rules(client)
    problems.extend(fw_problems)
    if host_blocked and _engine_is_local(client):
        problems.extend(
            f"The DNS server {address} (from the host's resolv.conf) is an address of this host, which sandboxes "
            "cannot reach, so name resolution in sandboxes fails if the engine uses it; give the engine an "
            'off-host resolver (daemon.json "dns").'
            for address in host_local_nameservers()
        )
    return NetworkPolicyStatus(
        network_name=name,
        host_blocked=host_blocked,
        metadata_blocked=metadata_blocked,
        icc_disabled=icc_disabled,
        problems=tuple(problems),
    )


def remove_sandbox_network(client: docker.DockerClient, name: str = DEFAULT_NETWORK) -> None:
    """Remove the network, then its tagged firewall rules. A foreign network is left alone."""
    interfaces = {bridge_interface_name(name)}
    network = find_network(client, name)
    if network is not None:
        _require_managed(network)
        interfaces.add(_interface(network))
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # Keep the rules: containers still on the bridge must stay confined.
            raise NetworkPolicyError(
                f"Network {name!r} could not be removed ({exc.explanation}); its firewall rules were kept. "
                "Destroy the containers attached to it first."
            ) from exc
    for interface in sorted(interfaces):
        _remove_rules(interface)


def prune_stale_rules(client: docker.DockerClient) -> list[str]:
    """Remove our tagged rules for bridges that no network uses any more; return those interfaces.

    A network removed without `remove_sandbox_network` (e.g. `docker network rm`) leaves its
    rules behind. Rules are read before networks are listed, so a network another process is
    creating right now (network first, rules second) is always seen as alive.
    """
    interfaces: set[str] = set()
    for _, fw in _installed_firewalls():
        try:
            for chain in ("INPUT", firewall.DOCKER_USER):
                interfaces.update(firewall.rule_interfaces(fw.tagged_rules(chain)))
        except FirewallError as exc:
            log.warning("could not list firewall rules to prune: %s", exc)
            return []
    live = {_interface(network) for network in client.networks.list()}
    stale = sorted(i for i in interfaces if i.startswith(BRIDGE_PREFIX) and i not in live)
    for interface in stale:
        _remove_rules(interface)
    return stale


def host_local_nameservers(paths: Iterable[str] = RESOLV_CONF_FILES) -> list[str]:
    """IPv4 nameservers that are addresses of this host (loopback excepted: the engine replaces those).

    The engine's embedded DNS (20.10) forwards from inside the container's namespace, so such a
    server is reached through the bridge and dropped by the host rule.
    """
    found: list[str] = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) < 2 or words[0] != "nameserver" or words[1] in found:
                continue
            try:
                address = ipaddress.ip_address(words[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback and _is_local_address(words[1]):
                found.append(words[1])
    return found


def _is_local_address(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))  # succeeds only for an address this host owns
        except OSError:
            return False
    return True


def _engine_is_local(client: docker.DockerClient) -> bool:
    """The host's resolv.conf only says something about an engine on this machine (a unix socket)."""
    base_url = getattr(getattr(client, "api", None), "base_url", "")
    return isinstance(base_url, str) and base_url.startswith("http+docker://")


def find_network(client: docker.DockerClient, name: str) -> Network | None:
    # The engine's name filter matches substrings; only an exact name counts.
    for network in client.networks.list(names=[name]):
        if network.name == name:
            network.reload()  # list() omits attached containers
            return network
    return None


def _require_managed(network: Network) -> None:
    labels = network.attrs.get("Labels") or {}
    if labels.get(MANAGED) != "true":
        raise NetworkPolicyError(
            f"Network {network.name!r} exists but is not labelled {MANAGED}=true, so it was not created by "
            "this sandbox and is left alone; remove it or configure another network name."
        )
    if network.attrs.get("Driver") != "bridge":
        raise NetworkPolicyError(f"Network {network.name!r} uses driver {network.attrs.get('Driver')!r}, not bridge.")


def _wanted_options(name: str) -> dict[str, str]:
    return {ICC_OPTION: "false", BRIDGE_NAME_OPTION: bridge_interface_name(name)}


def _matches(network: Network, name: str) -> bool:
    options = network.attrs.get("Options") or {}
    wanted = _wanted_options(name)
    return all(options.get(k) == v for k, v in wanted.items()) and not network.attrs.get("EnableIPv6")


def _ensure_network(client: docker.DockerClient, name: str) -> Network:
    for _ in range(2):
        network = find_network(client, name)
        if network is None:
            try:
                return client.networks.create(
                    name,
                    driver="bridge",
                    options=_wanted_options(name),
                    labels={MANAGED: "true"},
                    enable_ipv6=False,
                    check_duplicate=True,
                )
            except docker.errors.APIError as exc:
                network = find_network(client, name)  # another process may have won the race
                if network is None:
                    raise NetworkPolicyError(f"Network {name!r} could not be created: {exc.explanation}") from exc
        _require_managed(network)
        if _matches(network, name) or network.attrs.get("Containers"):
            return network  # in use with other settings: reported, not pulled from under them
        log.info("recreating network %s: its options differ from the sandbox policy", name)
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            return network  # a container joined meanwhile; report what it has
    raise NetworkPolicyError(f"Network {name!r} kept changing while it was being set up; try again.")


def _interface(network: Network) -> str:
    options = network.attrs.get("Options") or {}
    return str(options.get(BRIDGE_NAME_OPTION) or "br-" + str(network.id)[:12])  # the engine's default name


def _apply_firewall(name: str, interface: str, *, ipv6: bool, install: bool) -> tuple[bool, bool, list[str]]:
    """Install (or only check) the rules; return (host_blocked, metadata_blocked, problems)."""
    rules = sandbox_rules(interface)
    consequence = (
        f"sandboxes on network {name!r} can reach services on this host and 169.254.169.254 until these rules "
        f"exist: {'; '.join(r.describe() for r in rules)}"
    )
    binary = firewall.locate("iptables")
    if binary is None:
        return False, False, [f"iptables was not found, so no firewall rules were installed; {consequence}."]
    v4 = Firewall(binary)
    try:
        with firewall.rules_lock():
            if install:
                v4.ensure_docker_user_chain()
                for rule in rules:
                    v4.ensure(rule)
            host, metadata, published = (v4.exists(rule) for rule in rules)
            hooked = v4.docker_user_hooked()
    except FirewallError as exc:
        verb = "installed" if install else "checked"
        if exc.denied:
            why = f"this process is not allowed to change the firewall (run as root; iptables said: {exc})"
        else:
            why = str(exc)
        return False, False, [f"Firewall rules were not {verb} because {why}; {consequence}."]

    problems: list[str] = []
    host_blocked = host and published and hooked
    metadata_blocked = metadata and hooked
    if not (host_blocked and metadata_blocked):
        if not install:
            problems.append(f"install_firewall is off and the rules are not all present; {consequence}.")
        elif not hooked:
            problems.append(f"The FORWARD chain does not jump to DOCKER-USER, so {consequence}.")
        else:
            problems.append(f"The firewall rules did not stick (another tool may be rewriting them); {consequence}.")

    v6_ok, v6_problem = _apply_ipv6(interface, install=install)
    if ipv6:
        # The engine disables IPv6 inside containers on IPv4-only networks; this one is not.
        problems.append(
            f"Network {name!r} has IPv6 enabled: IPv6 metadata addresses are not filtered; recreate the network "
            "without IPv6."
        )
        metadata_blocked = False
        if not v6_ok:
            host_blocked = False
            problems.append(v6_problem or f"The IPv6 host rule for network {name!r} is missing.")
    return host_blocked, metadata_blocked, problems


def _apply_ipv6(interface: str, *, install: bool) -> tuple[bool, str]:
    """Best-effort IPv6 INPUT drop: defence in depth, required only on IPv6 networks."""
    binary = firewall.locate("ip6tables")
    if binary is None:
        return False, "ip6tables was not found, so the host is not blocked over IPv6."
    v6 = Firewall(binary)
    rule = firewall.host_rule(interface)
    try:
        with firewall.rules_lock():
            if install:
                v6.ensure(rule)
            return v6.exists(rule), ""
    except FirewallError as exc:
        return False, f"The IPv6 host rule could not be installed: {exc}."


def _installed_firewalls() -> list[tuple[str, Firewall]]:
    """(program, Firewall) for each of iptables and ip6tables that this host has."""
    found = ((program, firewall.locate(program)) for program in ("iptables", "ip6tables"))
    return [(program, Firewall(binary)) for program, binary in found if binary is not None]


def _remove_rules(interface: str) -> None:
    for program, fw in _installed_firewalls():
        try:
            with firewall.rules_lock():
                fw.remove_for_interface(interface)
                if program == "iptables":
                    fw.remove_docker_user_jump_if_unused()
        except FirewallError as exc:
            log.warning("firewall rules for %s were not removed: %s", interface, exc)
