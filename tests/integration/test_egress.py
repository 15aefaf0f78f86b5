"""Egress by allowlist on a real engine: every rule of the proxy tried as an attack.

Hermetic: the upstream servers are containers of this test on a network of its own, reached by
names only the proxy resolves (`egress_hosts`: allowed.test, sub.allowed.test, other.test). The
only traffic that leaves this machine is to the package registries (PyPI and npm), in the tests
that install through the `registries` preset.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from runtime.backends.docker.egress.policies import DEFAULT_ROOT
from runtime.backends.docker.egress.proxy import proxy_name
from runtime.config import RuntimeConfig
from runtime.monitoring.monitor import SandboxMonitor
from runtime.sandbox.events import EgressEvent
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.manager import ContainerManager

from .conftest import NETWORK, SESSION, _remove_test_network, image_or_skip

pytestmark = pytest.mark.integration
EGRESS_NETWORK = f"theappapp-test-egress-{SESSION}"
UPSTREAM = f"theappapp-test-upstream-{SESSION}"

# The upstream servers: HTTP on 80 and HTTPS on 443, answering with their own name and the Host asked for.
SERVER = r"""
import http.server, os, ssl, sys, threading
name = os.environ["NAME"]
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {name} for {self.headers.get('Host')}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Hello)
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Hello)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/certs/server.crt", "/certs/server.key")
tls.socket = context.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
print("ready", flush=True)
plain.serve_forever()
"""

# In a sandbox: CONNECT to the proxy for one host, then a TLS handshake naming another (domain fronting).
FRONTING = r"""
import os, socket, ssl, sys
connect_host, sni = sys.argv[1], sys.argv[2]
proxy = os.environ["HTTPS_PROXY"].removeprefix("http://").rstrip("/")
host, port = proxy.split(":")
raw = socket.create_connection((host, int(port)), timeout=10)
raw.sendall(f"CONNECT {connect_host}:443 HTTP/1.1\r\nHost: {connect_host}:443\r\n\r\n".encode())
answer = raw.recv(4096).decode()
print("proxy:", answer.splitlines()[0])
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
try:
    tls = context.wrap_socket(raw, server_hostname=sni)
    tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
    reply = b""
    while chunk := tls.recv(4096):
        reply += chunk
    print("origin:", reply.decode().splitlines()[-1])
except (ssl.SSLError, OSError) as err:
    print("handshake refused:", type(err).__name__)
"""


@dataclass(frozen=True)
class Upstream:
    allowed: str  # address of the server behind allowed.test and sub.allowed.test
    other: str  # address of the server behind other.test
    subnet: str  # the egress network's


def _free_subnet(client: docker.DockerClient) -> str:
    """A /22 for this session's egress network that no network on the engine overlaps: in 10.213.0.0/17,
    which the engine never hands out itself (its own pools, 172.17-31/16 and 192.168/20s, it works through
    over time: a test network may hold all of 172.31/16)."""
    taken = [ipaddress.ip_network(c["Subnet"]) for n in client.networks.list()
             for c in (n.attrs.get("IPAM") or {}).get("Config") or [] if c.get("Subnet", "").count(".") == 3]
    start = int(SESSION[:4], 16) % 32
    for k in range(32):
        candidate = ipaddress.ip_network(f"10.213.{((start + k) % 32) * 4}.0/22")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    pytest.skip("no free /22 in 10.213.0.0/17 for the test egress network (other networks hold them all)")


def _certificates(directory: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the test servers need a certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=allowed.test", "-addext", "subjectAltName=DNS:allowed.test,DNS:sub.allowed.test,DNS:other.test",
         "-keyout", str(directory / "server.key"), "-out", str(directory / "server.crt")],
        check=True, capture_output=True,
    )
    for file in directory.iterdir():
        file.chmod(0o644)


@pytest.fixture(scope="module")
def upstream(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    image = f"{image_or_skip(docker_client, 'python').image}:latest"
    image_or_skip(docker_client, "python")
    if not docker_client.images.list(name="theappapp-egress-proxy:latest"):
        pytest.skip("image theappapp-egress-proxy:latest is not built (nox -s build -- egress-proxy)")
    if os.geteuid() != 0:
        pytest.skip("egress allowlists need root (iptables and the proxy's policy directory)")
    certs = tmp_path_factory.mktemp("certs")
    _certificates(certs)
    certs.chmod(0o755)
    subnet = _free_subnet(docker_client)
    network = docker_client.networks.create(UPSTREAM, driver="bridge", labels={"theappapp-test": SESSION})
    servers = []
    try:
        for name in ("allowed", "other"):
            servers.append(docker_client.containers.run(
                image, ["python3", "-c", SERVER], name=f"{UPSTREAM}-{name}", user="0", detach=True,
                network=UPSTREAM, environment={"NAME": name}, volumes={str(certs): {"bind": "/certs", "mode": "ro"}},
                labels={"theappapp-test": SESSION},
            ))
        for server in servers:
            deadline = time.monotonic() + 30
            while b"ready" not in server.logs():
                assert time.monotonic() < deadline, server.logs().decode()
                time.sleep(0.1)
            server.reload()
        allowed, other = (s.attrs["NetworkSettings"]["Networks"][UPSTREAM]["IPAddress"] for s in servers)
        yield Upstream(allowed, other, subnet)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(proxy_name(EGRESS_NETWORK)).remove(force=True)
        for server in servers:
            server.remove(force=True)
        network.remove()
        _remove_test_network(docker_client, EGRESS_NETWORK)
        shutil.rmtree(DEFAULT_ROOT / EGRESS_NETWORK, ignore_errors=True)


class Audit:
    def __init__(self) -> None:
        self.events: list[EgressEvent] = []

    def on_exec(self, event: object) -> None: ...

    def on_lifecycle(self, event: object) -> None: ...

    def on_egress(self, event: EgressEvent) -> None:
        self.events.append(event)


def egress_config(up: Upstream, **more: Any) -> RuntimeConfig:
    settings: dict[str, Any] = {
        "network_name": NETWORK, "egress_network_name": EGRESS_NETWORK, "egress_subnet": up.subnet,
        "egress_hosts": (f"allowed.test={up.allowed}", f"sub.allowed.test={up.allowed}", f"other.test={up.other}"),
        "egress_upstream_networks": (UPSTREAM,), "pool_enabled": False,
    }
    return RuntimeConfig.load(**(settings | more))


def policies_naming(container_id: str) -> list[str]:
    """The policy files (by address) that the proxy would apply to this container."""
    clients = DEFAULT_ROOT / EGRESS_NETWORK / "clients"
    return [p.name for p in clients.glob("*") if container_id in p.read_text()]


@pytest.fixture
async def egress(upstream: Upstream) -> AsyncIterator[tuple[ContainerManager, Audit]]:
    audit = Audit()
    manager = ContainerManager(egress_config(upstream, monitor_enabled=False), observers=[audit])
    await manager.startup()
    yield manager, audit
    await manager.shutdown()


async def run(box: Sandbox, command: str, timeout: float = 30) -> tuple[int | None, str]:
    result = await box.exec(command, timeout=timeout)
    return result.exit_code, result.stdout + result.stderr


async def test_allowed_hosts_answer_and_others_are_refused_with_the_reason(
    egress: tuple[ContainerManager, Audit], unique: str
) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box:
        code, out = await run(box, "curl -sS -m 10 http://allowed.test/")
        assert code == 0 and out == "hello from allowed for allowed.test\n", out
        code, out = await run(box, "curl -sS -k -m 10 https://allowed.test/")
        assert code == 0 and out == "hello from allowed for allowed.test\n", out
        code, out = await run(box, "curl -sS -m 10 -D - -o /dev/null http://other.test/")
        assert " 403 " in out.splitlines()[0], out
        assert "X-Egress-Reason: other.test is not in the egress allowlist of task" in out, out
        # HTTPS: refused at the CONNECT, with the reason (a 407: see squid.conf), never a hang.
        started = time.monotonic()
        code, out = await run(box, "curl -sS -k -m 10 -v https://other.test/ 2>&1")
        assert code != 0 and "CONNECT tunnel failed, response 407" in out, out
        assert "other.test is not in the egress allowlist" in out, out
        assert time.monotonic() - started < 5


async def test_nothing_reaches_past_the_proxy(egress: tuple[ContainerManager, Audit], upstream: Upstream,
                                              unique: str) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box, \
            manager.task(f"b{unique}", f"q{unique}", "python", egress=["allowed.test"]) as peer:
        await peer.start_process("python3 -m http.server 8765 --bind 0.0.0.0")
        peer_ip = (await run(peer, "hostname -I"))[1].split()[0]
        proxy = manager.egress_status.proxy_url.removeprefix("http://").split(":")[0]  # type: ignore[union-attr]
        gateway = str(ipaddress.ip_network(upstream.subnet).network_address + 1)
        for target in (f"http://{upstream.allowed}/", f"http://{gateway}:22/", f"http://{proxy}:22/",
                       f"http://{peer_ip}:8765/", "http://allowed.test/"):
            code, out = await run(box, f"curl -sS -m 3 --noproxy '*' {target}")
            assert code != 0, f"{target} was reached directly: {out}"
        # No resolver answers: no name resolves, so nothing can tunnel through DNS; and it fails fast.
        started = time.monotonic()
        code, out = await run(box, "python3 -c \"import socket; socket.getaddrinfo('pypi.org', 443)\"")
        assert code != 0 and "gaierror" in out, out
        code, _ = await run(box, "getent hosts allowed.test")
        assert code != 0
        assert time.monotonic() - started < 10


async def test_the_tls_sni_must_be_the_connect_host(egress: tuple[ContainerManager, Audit], unique: str) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box:
        await box.write_files({"fronting.py": FRONTING})
        _, out = await run(box, "python3 fronting.py allowed.test allowed.test")
        assert "origin: hello from allowed for allowed.test" in out, out
        # Domain fronting: the tunnel is for an allowed name, the handshake for another. Refused.
        _, out = await run(box, "python3 fronting.py allowed.test other.test")
        assert "handshake refused" in out and "hello from" not in out, out


async def test_ip_literals_are_refused_unless_listed(egress: tuple[ContainerManager, Audit], upstream: Upstream,
                                                     unique: str) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box:
        _, out = await run(box, f"curl -sS -m 10 -D - -o /dev/null http://{upstream.allowed}/")
        assert " 403 " in out.splitlines()[0] and f"{upstream.allowed} is not in the egress allowlist" in out, out
    # Listed, a literal passes the list; a private address is still refused (only mapped names may be private).
    async with manager.task(f"b{unique}", f"p{unique}", "python", egress=[upstream.allowed]) as box:
        _, out = await run(box, f"curl -sS -m 10 -D - -o /dev/null http://{upstream.allowed}/")
        assert " 403 " in out.splitlines()[0] and "ERR_EGRESS_PRIVATE" in out, out


async def test_a_wildcard_matches_subdomains_only(egress: tuple[ContainerManager, Audit], unique: str) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["*.allowed.test"]) as box:
        code, out = await run(box, "curl -sS -m 10 http://sub.allowed.test/")
        assert code == 0 and out == "hello from allowed for sub.allowed.test\n", out
        code, out = await run(box, "curl -sS -m 10 -o /dev/null -w '%{http_code}' http://allowed.test/")
        assert out == "403", out


async def test_each_task_gets_exactly_its_own_list(egress: tuple[ContainerManager, Audit], unique: str) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as first, \
            manager.task(f"b{unique}", f"p{unique}", "python", egress=["other.test"]) as second:
        probe = "curl -sS -m 10 -o /dev/null -w '%{http_code}' http://{}/"
        results = await asyncio.gather(*(run(box, probe.replace("{}", host)) for box in (first, second)
                                         for host in ("allowed.test", "other.test")))
        assert [out for _, out in results] == ["200", "403", "403", "200"]


async def test_a_dead_proxy_fails_closed_and_is_started_again(
    egress: tuple[ContainerManager, Audit], docker_client: docker.DockerClient, unique: str
) -> None:
    manager, _ = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box:
        docker_client.containers.get(proxy_name(EGRESS_NETWORK)).kill()
        # While it is down there is no way out at all (and no hang); then the manager has it back.
        _, out = await run(box, "for i in $(seq 80); do curl -s -m 1 -o /dev/null -w '%{http_code} ' "
                                   "http://allowed.test/; sleep 0.1; done", timeout=120)
        answers = out.split()
        assert answers[0] == "000" and answers[-1] == "200" and set(answers) == {"000", "200"}, out
        assert manager.backend.egress.restarts >= 1  # type: ignore[attr-defined]  # the manager did it


async def test_every_connection_is_audited(upstream: Upstream, unique: str, tmp_path: Path) -> None:
    db = tmp_path / "monitor.sqlite3"
    manager = ContainerManager(egress_config(upstream, monitor_db=str(db)))
    await manager.startup()
    try:
        async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["allowed.test"]) as box:
            await run(box, "curl -sS -m 10 http://allowed.test/ http://other.test/ -o /dev/null -o /dev/null")
            await run(box, "curl -sS -k -m 10 https://allowed.test/ -o /dev/null")
        deadline = time.monotonic() + 15
        monitor = next(o for o in manager.observers.members if isinstance(o, SandboxMonitor))
        while len(monitor.egress_events(task_id=f"a{unique}")) < 3 and time.monotonic() < deadline:
            monitor.flush()
            await asyncio.sleep(0.2)
        events = {(e.host, e.port, e.method, e.verdict) for e in monitor.egress_events(task_id=f"a{unique}")}
        assert events == {("allowed.test", 80, "GET", "allowed"), ("other.test", 80, "GET", "denied"),
                          ("allowed.test", 443, "CONNECT", "allowed")}
        tunnel = next(e for e in monitor.egress_events(task_id=f"a{unique}") if e.method == "CONNECT")
        assert tunnel.project_id == f"p{unique}" and tunnel.bytes_in > 0 and tunnel.bytes_out > 0
    finally:
        await manager.shutdown()
    stats = subprocess.run([sys.executable, "-m", "runtime.cli", "stats", "--db", str(db)],
                           capture_output=True, text=True, check=True).stdout
    assert "other.test" in stats and "denied" in stats and "not in the egress allowlist" in stats, stats


async def test_pip_and_npm_install_from_their_real_indexes_with_the_registries_preset(
    egress: tuple[ContainerManager, Audit], docker_client: docker.DockerClient, unique: str
) -> None:
    manager, audit = egress
    async with manager.task(f"a{unique}", f"p{unique}", "python", egress=["registries"]) as box:
        code, out = await run(box, "pip download -q --no-deps -d /tmp/dl six==1.17.0 && ls /tmp/dl", timeout=180)
        assert code == 0 and "six-1.17.0" in out, out
        code, out = await run(box, "curl -sS -k -m 10 -o /dev/null -w '%{http_code}' http://allowed.test/")
        assert out == "403", out  # the preset is the indexes, nothing else
    assert {"pypi.org", "files.pythonhosted.org"} <= {e.host for e in audit.events if e.verdict == "allowed"}
    image_or_skip(docker_client, "node")
    async with manager.task(f"b{unique}", f"p{unique}", "node", egress=["registries"]) as box:
        code, out = await run(box, "npm view is-number@7.0.0 version", timeout=180)
        assert code == 0 and out.strip() == "7.0.0", out


async def test_with_allowlist_as_the_mode_tasks_start_warm_and_their_policy_goes_with_them(
    upstream: Upstream, unique: str
) -> None:
    manager = ContainerManager(egress_config(upstream, monitor_enabled=False, network="allowlist",
                                             egress_allow=("allowed.test",), pool_enabled=True))
    await manager.startup()  # configured for allowlists: the proxy (and its confined network) now
    try:
        assert manager.egress_status is not None and manager.egress_status.ready, manager.egress_status
        assert await manager.prewarm(f"p{unique}", "python") == 1
        info = await manager.create_container(f"a{unique}", f"p{unique}", "python")  # a spare, handed over
        assert info.network == EGRESS_NETWORK and info.egress == ("allowed.test",)
        assert len(policies_naming(info.container_id)) == 1
        out = await manager.exec_command(f"a{unique}", "for h in allowed.test other.test; do curl -s -m 10 "
                                                       "-o /dev/null -w '%{http_code} ' http://$h/; done")
        assert out.stdout == "200 403 ", out
        await manager.destroy_container(f"a{unique}")
        await manager.settle()
        assert policies_naming(info.container_id) == []  # gone before its address can go to another sandbox
    finally:
        await manager.shutdown()


def test_cli_run_allow_reaches_only_the_hosts_given(upstream: Upstream) -> None:
    env = {**os.environ, "THEAPPAPP_NETWORK_NAME": NETWORK, "THEAPPAPP_EGRESS_NETWORK_NAME": EGRESS_NETWORK,
           "THEAPPAPP_EGRESS_SUBNET": upstream.subnet, "THEAPPAPP_EGRESS_UPSTREAM_NETWORKS": UPSTREAM,
           "THEAPPAPP_EGRESS_HOSTS": f"allowed.test={upstream.allowed} other.test={upstream.other}",
           "THEAPPAPP_MONITOR_ENABLED": "false"}
    program = ("import urllib.request as u\nfor host in ('allowed.test', 'other.test'):\n"
               "    try: print(u.urlopen(f'http://{host}/').read().decode().strip())\n"
               "    except Exception as err: print(host, 'refused', getattr(err, 'code', err))\n")
    done = subprocess.run([sys.executable, "-m", "runtime.cli", "run", "python", "-c", program, "--allow",
                           "allowed.test", "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hello from allowed for allowed.test", "other.test refused 403"]
