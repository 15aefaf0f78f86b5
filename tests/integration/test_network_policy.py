"""The sandbox network policy, proven by trying each attack against the real engine.

Every "blocked" claim comes with a control that reaches the same target from the default
bridge (or an icc-enabled network), so a broken probe cannot pass as a block. All traffic
stays on this machine: "outside" is a network namespace behind a veth pair, and metadata
addresses are put on local interfaces before they are attacked.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from runtime.backends.docker.firewall import TAG
from runtime.backends.docker.network import (
    NetworkPolicyStatus,
    bridge_interface_name,
    ensure_sandbox_network,
    remove_sandbox_network,
)

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
TEST_LABEL = "org.theappapp.test.network-policy"
IMAGES = ("theappapp-python:latest", "theappapp-base:bookworm")
CONNECT_TIMEOUT = 3  # seconds per connect attempt; a dropped SYN fails after this
OUTSIDE_PORT = 8080  # the HTTP server in the "outside" namespace


# --- host-side helpers -----------------------------------------------------------------------


def _sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def _host_ipv4_addresses() -> list[str]:
    """Every IPv4 address on the host except loopback (which a container cannot address)."""
    found = []
    for line in _sh("ip", "-4", "-o", "addr").splitlines():
        address = line.split()[3].split("/")[0]
        if not ipaddress.ip_address(address).is_loopback:
            found.append(address)
    return found


def _iface_ipv4(interface: str) -> str:
    return _sh("ip", "-4", "-o", "addr", "show", "dev", interface).split()[3].split("/")[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _tagged_rules(program: str, interface: str) -> list[str]:
    lines = _sh(program, "-w", "5", "-S").splitlines()
    return [line for line in lines if TAG in line and f"-i {interface} " in line + " "]


@dataclass
class Listener:
    """A TCP server in this process that records who connected."""

    host: str
    port: int = 0
    peers: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> Listener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._sock = sock
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


# Served inside the "outside" namespace: answers every A query with one address.
_DNS_SERVER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
answer = socket.inet_aton(sys.argv[2])
while True:
    data, peer = s.recvfrom(512)
    end = 12 + data[12:].index(b"\0") + 5
    question, qtype = data[12:end], struct.unpack(">H", data[end - 4:end - 2])[0]
    flags, count = b"\x81\x80", (1 if qtype == 1 else 0)
    reply = data[:2] + flags + struct.pack(">HHHH", 1, count, 0, 0) + question
    if count:
        reply += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + answer
    s.sendto(reply, peer)
"""


# --- container helpers -------------------------------------------------------------------------


def _probe(container: Container, targets: list[tuple[str, int]]) -> dict[str, bool]:
    """Try every `ip:port` from inside `container` at once; True where a TCP connect succeeded."""
    attempts = " ".join(
        f"(timeout {CONNECT_TIMEOUT} bash -c 'echo > /dev/tcp/{ip}/{port}' 2>/dev/null "
        f"&& echo '{ip}:{port} open' || echo '{ip}:{port} closed') &"
        for ip, port in targets
    )
    result = container.exec_run(["bash", "-c", f"{attempts} wait"])
    outcome = dict(line.split() for line in result.output.decode().splitlines())
    assert len(outcome) == len(targets), result.output
    return {target: state == "open" for target, state in outcome.items()}


def _ip(container: Container, network: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _serve_http(container: Container, port: int) -> None:
    container.exec_run(["python3", "-m", "http.server", str(port), "--bind", "0.0.0.0"], detach=True)
    for _ in range(50):
        if container.exec_run(["bash", "-c", f"echo > /dev/tcp/127.0.0.1/{port}"]).exit_code == 0:
            return
        time.sleep(0.1)
    raise AssertionError("http.server did not start in the container")


class Containers:
    """Starts labelled containers and removes exactly those."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.started: list[Container] = []

    def run(self, role: str, network: str, **kwargs: object) -> Container:
        container = self.client.containers.run(
            self.image,
            ["sleep", "600"],
            name=f"theappapp-nettest-{RUN}-{role}-{uuid.uuid4().hex[:4]}",
            detach=True,
            user="1000:1000",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={TEST_LABEL: RUN},
            **({"network_mode": "none"} if network == "none" else {"network": network}),
            **kwargs,
        )
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root_with_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the network policy tests install iptables rules and interfaces: they need root")
    for tool in ("iptables", "ip6tables", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient) -> str:
    for ref in IMAGES:
        if docker_client.images.list(name=ref):
            return ref
    pytest.skip(f"none of {', '.join(IMAGES)} is built (build them with `nox -s build -- python`)")


@pytest.fixture(scope="module")
def python_in_image(image: str) -> None:
    if not image.startswith("theappapp-python"):
        pytest.skip(f"this test runs a server inside a sandbox and needs python3; {image} has none")


@dataclass(frozen=True)
class Sandbox:
    name: str
    interface: str
    status: NetworkPolicyStatus


@pytest.fixture(scope="module")
def sandbox_net(docker_client: docker.DockerClient, root_with_tools: None) -> Iterator[Sandbox]:
    name = f"theappapp-nettest-{RUN}"
    try:
        status = ensure_sandbox_network(docker_client, name)
        yield Sandbox(name, bridge_interface_name(name), status)
    finally:
        remove_sandbox_network(docker_client, name)


@pytest.fixture(scope="module")
def containers(docker_client: docker.DockerClient, image: str) -> Iterator[Containers]:
    made = Containers(docker_client, image)
    yield made
    made.remove_all()


@pytest.fixture(scope="module")
def sandbox(containers: Containers, sandbox_net: Sandbox) -> Container:
    return containers.run("sbx", sandbox_net.name)


@pytest.fixture(scope="module")
def control(containers: Containers) -> Container:
    """A container on the engine's default bridge: no policy applies to it."""
    return containers.run("ctl", "bridge")


@pytest.fixture
def host_listener() -> Iterator[Listener]:
    listener = Listener("0.0.0.0").start()
    yield listener
    listener.close()


@dataclass(frozen=True)
class Outside:
    """A namespace standing in for the internet and for a routed metadata service."""

    namespace: str
    address: str  # the namespace's address, routed from the host over the veth
    metadata: str  # a 169.254/16 address that lives in the namespace, reached by routing


@pytest.fixture(scope="module")
def outside(root_with_tools: None) -> Iterator[Outside]:
    namespace, host_end, ns_end = f"tapp-out-{RUN}", f"to{RUN}h", f"to{RUN}n"
    used = {ipaddress.ip_network(r.split()[0], strict=False) for r in _sh("ip", "-4", "route").splitlines() if "/" in r}
    for _ in range(100):  # a free /30 in the benchmarking range (198.18.0.0/15): never on the internet
        net = ipaddress.ip_network(f"198.18.{random.randrange(256)}.{4 * random.randrange(64)}/30")
        if not any(net.overlaps(u) for u in used):
            break
    host_ip, ns_ip = (str(h) for h in net.hosts())
    metadata = "169.254.170.2"  # the ECS task-metadata address: routed, so only DOCKER-USER can stop it
    steps = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end],
        ["ip", "link", "set", ns_end, "netns", namespace],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "-n", namespace, "addr", "add", f"{ns_ip}/30", "dev", ns_end],
        ["ip", "-n", namespace, "addr", "add", f"{metadata}/32", "dev", ns_end],
        ["ip", "-n", namespace, "link", "set", ns_end, "up"],
        ["ip", "-n", namespace, "link", "set", "lo", "up"],
        ["ip", "route", "add", f"{metadata}/32", "via", ns_ip],
    ]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for step in steps:
            _sh(*step)
        # An HTTP server on every namespace address (incl. the metadata one) and a resolver.
        servers.append(_in_namespace(namespace, sys.executable, "-m", "http.server", str(OUTSIDE_PORT)))
        servers.append(_in_namespace(namespace, sys.executable, "-c", _DNS_SERVER, ns_ip, ns_ip))
        time.sleep(1)  # both bind within milliseconds; this is generous
        yield Outside(namespace, ns_ip, metadata)
    finally:
        for server in servers:
            _stop(server)
        subprocess.run(["ip", "route", "del", f"{metadata}/32", "via", ns_ip], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _in_namespace(namespace: str, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", namespace, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(timeout=10)


# --- the policy ----------------------------------------------------------------------------


def test_ensure_reports_a_fully_isolated_network(sandbox_net: Sandbox) -> None:
    assert sandbox_net.status == NetworkPolicyStatus(sandbox_net.name, True, True, True, ())


def test_host_listener_is_unreachable_through_every_host_address(
    sandbox: Container, control: Container, sandbox_net: Sandbox, host_listener: Listener
) -> None:
    addresses = _host_ipv4_addresses()
    gateway, docker0 = _iface_ipv4(sandbox_net.interface), _iface_ipv4("docker0")
    assert gateway in addresses and docker0 in addresses
    targets = [(address, host_listener.port) for address in addresses]

    from_sandbox = _probe(sandbox, targets)
    from_control = _probe(control, targets)

    print(f"host addresses tried: {addresses}; sandbox reached {from_sandbox}; control reached {from_control}")
    assert all(from_control.values()), "control: the listener must be reachable from the default bridge"
    assert not any(from_sandbox.values())
    assert _ip(sandbox, sandbox_net.name) not in host_listener.peers


def test_sandbox_has_no_ipv6_so_the_ipv4_rules_cover_every_path(sandbox: Container) -> None:
    # The engine disables IPv6 in containers on IPv4-only networks; an ip6tables INPUT drop backs it up.
    result = sandbox.exec_run(["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/net/if_inet6"])
    assert result.exit_code == 0
    assert result.output.decode().strip() == "1"


def test_a_port_published_by_another_container_is_unreachable_through_host_addresses(
    containers: Containers, sandbox: Container, control: Container, python_in_image: None
) -> None:
    server = containers.run("pub", "bridge", ports={"8000/tcp": ("0.0.0.0", None)})
    _serve_http(server, 8000)
    server.reload()
    published = int(server.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])
    targets = [(address, published) for address in _host_ipv4_addresses()]

    assert all(_probe(control, targets).values()), "control: the published port must be reachable"
    assert not any(_probe(sandbox, targets).values())


def test_sandboxes_cannot_reach_each_other(
    containers: Containers, sandbox: Container, sandbox_net: Sandbox, python_in_image: None
) -> None:
    peer = containers.run("peer", sandbox_net.name)
    _serve_http(peer, 8000)
    peer_ip = _ip(peer, sandbox_net.name)

    assert _probe(sandbox, [(peer_ip, 8000)]) == {f"{peer_ip}:8000": False}
    # Docker's DNS still answers: the name resolves, only the connection is refused.
    resolved = sandbox.exec_run(["getent", "hosts", peer.name])
    assert resolved.exit_code == 0 and resolved.output.decode().split()[0] == peer_ip


def test_control_peers_on_an_icc_network_do_reach_each_other(
    docker_client: docker.DockerClient, containers: Containers, python_in_image: None
) -> None:
    name = f"theappapp-nettest-{RUN}-icc"
    docker_client.networks.create(name, driver="bridge", labels={TEST_LABEL: RUN})
    try:
        server, client = containers.run("icc-a", name), containers.run("icc-b", name)
        _serve_http(server, 8000)
        server_ip = _ip(server, name)
        assert _probe(client, [(server_ip, 8000)]) == {f"{server_ip}:8000": True}
    finally:
        for container in containers.started:
            if container.name.startswith(f"theappapp-nettest-{RUN}-icc"):
                container.remove(force=True)
        docker_client.networks.get(name).remove()


def test_containers_on_other_networks_are_unreachable(
    containers: Containers, sandbox: Container, control: Container, python_in_image: None
) -> None:
    server = containers.run("other", "bridge")
    _serve_http(server, 8000)
    target = (_ip(server, "bridge"), 8000)
    assert all(_probe(control, [target]).values()), "control: same-network client reaches it"
    assert not any(_probe(sandbox, [target]).values())


def test_metadata_address_on_the_host_is_unreachable(sandbox: Container, control: Container) -> None:
    # A local interface carries the address: a veth pair, as this kernel has no dummy driver.
    local, peer, metadata = f"tmd{RUN}", f"tmd{RUN}p", "169.254.169.254"
    _sh("ip", "link", "add", local, "type", "veth", "peer", "name", peer)
    try:
        _sh("ip", "addr", "add", f"{metadata}/32", "dev", local)
        _sh("ip", "link", "set", peer, "up")
        _sh("ip", "link", "set", local, "up")
        listener = Listener(metadata).start()
        try:
            target = [(metadata, listener.port)]
            assert all(_probe(control, target).values()), "control: the default bridge reaches it"
            assert not any(_probe(sandbox, target).values())
        finally:
            listener.close()
    finally:
        subprocess.run(["ip", "link", "del", local], capture_output=True, check=False)


def test_routed_metadata_is_blocked_while_egress_and_dns_work(
    containers: Containers, sandbox_net: Sandbox, control: Container, outside: Outside
) -> None:
    # A sandbox whose DNS upstream is the "outside" resolver: Docker's embedded DNS forwards to it.
    sandbox = containers.run("egress", sandbox_net.name, dns=[outside.address])
    egress, metadata = (outside.address, OUTSIDE_PORT), (outside.metadata, OUTSIDE_PORT)
    egress_key, metadata_key = f"{outside.address}:{OUTSIDE_PORT}", f"{outside.metadata}:{OUTSIDE_PORT}"

    assert _probe(control, [egress, metadata]) == {egress_key: True, metadata_key: True}
    assert _probe(sandbox, [egress, metadata]) == {egress_key: True, metadata_key: False}
    resolved = sandbox.exec_run(["getent", "hosts", "egress.theappapp.test"])
    assert resolved.exit_code == 0, "DNS through the engine's resolver must work"
    assert resolved.output.decode().split()[0] == outside.address


def test_a_host_port_that_dnat_forwards_elsewhere_is_unreachable(
    sandbox: Container, control: Container, outside: Outside
) -> None:
    # Like a kube-proxy NodePort, or the engine's published ports with the userland proxy off:
    # the host address is rewritten before INPUT, so only the DOCKER-USER DNAT rule stops it.
    port = _free_port()
    rule = [
        "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-p", "tcp", "--dport", str(port),
        "-m", "comment", "--comment", f"theappapp-nettest-{RUN}",
        "-j", "DNAT", "--to-destination", f"{outside.address}:{OUTSIDE_PORT}",
    ]  # fmt: skip
    _sh("iptables", "-w", "5", "-t", "nat", "-I", *rule)
    try:
        targets = [(address, port) for address in _host_ipv4_addresses()]
        assert all(_probe(control, targets).values()), "control: the forwarded port answers on every host address"
        assert not any(_probe(sandbox, targets).values())
    finally:
        _sh("iptables", "-w", "5", "-t", "nat", "-D", *rule)


def test_a_dns_server_on_the_host_is_unreachable_too(
    containers: Containers, sandbox_net: Sandbox, root_with_tools: None
) -> None:
    # Why ensure() warns about a resolver on a host address: Docker 20.10's embedded DNS
    # forwards from the container's namespace, so the query crosses the bridge and is dropped.
    gateway = _iface_ipv4("docker0")
    try:
        server = subprocess.Popen([sys.executable, "-c", _DNS_SERVER, gateway, "10.9.9.9"], stderr=subprocess.PIPE)
    except OSError as exc:
        pytest.skip(f"cannot start a resolver: {exc}")
    try:
        time.sleep(0.5)
        if server.poll() is not None:
            pytest.skip(f"port 53 on {gateway} is taken: {server.stderr.read().decode() if server.stderr else ''}")
        control = containers.run("dns-ctl", "bridge", dns=[gateway])
        sandbox = containers.run("dns-sbx", sandbox_net.name, dns=[gateway])
        query = ["timeout", "5", "getent", "hosts", "host-dns.theappapp.test"]
        assert control.exec_run(query).output.decode().split()[:1] == ["10.9.9.9"], "control resolves"
        assert sandbox.exec_run(query).exit_code != 0
    finally:
        _stop(server)


def test_network_none_has_only_loopback_and_no_way_to_the_host(containers: Containers, host_listener: Listener) -> None:
    isolated = containers.run("none", "none")
    interfaces = isolated.exec_run(["ls", "/sys/class/net"]).output.decode().split()
    assert interfaces == ["lo"]
    targets = [(address, host_listener.port) for address in _host_ipv4_addresses()]
    assert not any(_probe(isolated, targets).values())
    assert host_listener.peers == []


def test_ensure_is_idempotent_and_remove_deletes_every_tagged_rule(
    docker_client: docker.DockerClient, root_with_tools: None
) -> None:
    name = f"theappapp-nettest-{RUN}-rm"
    interface = bridge_interface_name(name)
    try:
        first = ensure_sandbox_network(docker_client, name)
        counts = (len(_tagged_rules("iptables", interface)), len(_tagged_rules("ip6tables", interface)))
        second = ensure_sandbox_network(docker_client, name)
        assert first == second and first.host_blocked
        assert counts == (3, 1)
        assert (len(_tagged_rules("iptables", interface)), len(_tagged_rules("ip6tables", interface))) == counts
        assert Path(f"/sys/class/net/{interface}").exists()
    finally:
        remove_sandbox_network(docker_client, name)
    assert _tagged_rules("iptables", interface) == [] and _tagged_rules("ip6tables", interface) == []
    assert not docker_client.networks.list(names=[name])
    assert not Path(f"/sys/class/net/{interface}").exists()


def test_rules_of_a_network_removed_behind_our_back_are_pruned_by_the_next_ensure(
    docker_client: docker.DockerClient, root_with_tools: None
) -> None:
    gone, kept = f"theappapp-nettest-{RUN}-gone", f"theappapp-nettest-{RUN}-kept"
    gone_if, kept_if = bridge_interface_name(gone), bridge_interface_name(kept)
    try:
        ensure_sandbox_network(docker_client, gone)
        ensure_sandbox_network(docker_client, kept)
        docker_client.networks.get(gone).remove()  # plain `docker network rm`: its rules stay
        assert len(_tagged_rules("iptables", gone_if)) == 3
        status = ensure_sandbox_network(docker_client, kept)
        assert status.host_blocked
        assert _tagged_rules("iptables", gone_if) == [] and _tagged_rules("ip6tables", gone_if) == []
        assert len(_tagged_rules("iptables", kept_if)) == 3, "a live network's rules must survive pruning"
    finally:
        remove_sandbox_network(docker_client, gone)
        remove_sandbox_network(docker_client, kept)


def test_concurrent_ensures_make_one_network_and_one_set_of_rules(
    docker_client: docker.DockerClient, root_with_tools: None
) -> None:
    name = f"theappapp-nettest-{RUN}-race"
    interface = bridge_interface_name(name)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda _: ensure_sandbox_network(docker_client, name), range(4)))
        assert all(s.host_blocked and s.metadata_blocked and s.icc_disabled for s in statuses)
        assert len([n for n in docker_client.networks.list(names=[name]) if n.name == name]) == 1
        assert len(_tagged_rules("iptables", interface)) == 3
    finally:
        remove_sandbox_network(docker_client, name)


def test_without_net_admin_ensure_reports_instead_of_raising(
    docker_client: docker.DockerClient, root_with_tools: None
) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_ADMIN for this test")
    name = f"theappapp-nettest-{RUN}-nocap"
    script = (
        "import json, docker\n"
        "from runtime.backends.docker.network import ensure_sandbox_network\n"
        f"s = ensure_sandbox_network(docker.from_env(), {name!r})\n"
        "print(json.dumps([s.host_blocked, s.metadata_blocked, s.icc_disabled, list(s.problems)]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    try:
        # Root without CAP_NET_ADMIN: the engine socket still works, iptables does not.
        done = subprocess.run(
            ["setpriv", "--bounding-set", "-net_admin,-net_raw", sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        host_blocked, metadata_blocked, icc_disabled, problems = json.loads(done.stdout)
        assert (host_blocked, metadata_blocked, icc_disabled) == (False, False, True)
        assert len(problems) == 1 and "run as root" in problems[0]
        assert _tagged_rules("iptables", bridge_interface_name(name)) == []
    finally:
        remove_sandbox_network(docker_client, name)


# --- what doctor says about it (it only looks) -----------------------------------------------------


def test_doctor_passes_the_isolated_network_warns_on_a_missing_one_and_fails_a_foreign_one(
    docker_client: docker.DockerClient, sandbox_net: Sandbox
) -> None:
    from runtime.backends.docker.diagnose import network_policy

    assert network_policy(docker_client, sandbox_net.name, "sandbox").status == "PASS"
    missing = f"theappapp-test-missing-{RUN}"
    check = network_policy(docker_client, missing, "sandbox")
    assert check.status == "WARN" and "does not exist yet" in check.detail
    assert not docker_client.networks.list(names=[missing])  # looking made nothing
    foreign = docker_client.networks.create(f"theappapp-test-foreign-{RUN}", driver="bridge")
    try:
        check = network_policy(docker_client, foreign.name, "sandbox")
        assert check.status == "FAIL" and "not made by the sandbox" in check.detail
    finally:
        foreign.remove()
    assert network_policy(docker_client, missing, "none").status == "PASS"  # no network, no policy needed
