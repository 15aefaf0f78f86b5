"""Egress by allowlist: what the proxy adds to a request, and to a task's create. Prints figures; not a test.

    python benchmarks/bench_egress.py [--requests 300] [--creates 20]

A local upstream server (HTTP and HTTPS, on a network of this run's own, named `bench.test`
only for the proxy) answers both sides, so only this machine is measured:
1. A request's time, p50/p90 over `--requests`, each on a new connection (as a tool fetching one
   file does): from an allowlisted sandbox through the proxy, and from a container on the
   server's own network directly, in the same run, alternating per batch.
2. A task's create (create -> first output of `true` -> destroy, warm pool off on both sides):
   `network="allowlist"` against `"sandbox"`, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import docker
from benchlib import show
from docker.models.containers import Container

from runtime.backends.docker.egress.policies import DEFAULT_ROOT
from runtime.backends.docker.network import remove_sandbox_network
from runtime.backends.egress import EgressPolicy
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

SERVER = r"""
import http.server, ssl, threading
class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait out the client's delayed ACK (40 ms)
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *args): pass
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Hello)
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Hello)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain("/certs/s.crt", "/certs/s.key")
tls.socket = context.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
print("ready", flush=True); plain.serve_forever()
"""

# Run inside a container: N requests, each on a new connection; their durations (seconds) as JSON.
CLIENT = r"""
import http.client, json, os, ssl, sys, time
host, scheme, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
proxy = os.environ.get("HTTP_PROXY", "").removeprefix("http://").rstrip("/")
context = ssl._create_unverified_context()
out = []
for _ in range(n):
    t0 = time.perf_counter()
    if scheme == "https":
        if proxy:
            phost, pport = proxy.split(":"); c = http.client.HTTPSConnection(phost, int(pport), context=context)
            c.set_tunnel(host, 443)
        else:
            c = http.client.HTTPSConnection(host, 443, context=context)
        c.request("GET", "/")
    elif proxy:
        phost, pport = proxy.split(":"); c = http.client.HTTPConnection(phost, int(pport))
        c.request("GET", f"http://{host}/")
    else:
        c = http.client.HTTPConnection(host, 80); c.request("GET", "/")
    assert c.getresponse().read() == b"ok\n"
    c.close()
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def free_subnet(client: docker.DockerClient) -> str:
    """A /22 in 10.213.0.0/17 (never one of the engine's own pools) that no network of the engine overlaps."""
    taken = [ipaddress.ip_network(c["Subnet"]) for n in client.networks.list()
             for c in (n.attrs.get("IPAM") or {}).get("Config") or [] if c.get("Subnet", "").count(".") == 3]
    for k in range(32):
        candidate = ipaddress.ip_network(f"10.213.{k * 4}.0/22")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise SystemExit("no free /22 in 10.213.0.0/17 for the benchmark's egress network")


def certificates(directory: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=bench.test", "-keyout", str(directory / "s.key"),
                    "-out", str(directory / "s.crt")], check=True, capture_output=True)
    for file in directory.iterdir():
        file.chmod(0o644)
    directory.chmod(0o755)


async def requests(manager: ContainerManager, client: Container, server_ip: str,
                   n: int) -> None:
    async with manager.task(f"bench-{uuid.uuid4().hex[:8]}", "bench-egress", "python",
                            egress=["bench.test"]) as box:
        await box.write_files({"client.py": CLIENT})
        for scheme in ("http", "https"):
            proxied: list[float] = []
            direct: list[float] = []
            for _ in range(max(1, n // 50)):  # alternate in batches so drift hits both alike
                result = await box.exec(f"python3 client.py bench.test {scheme} 50", timeout=300)
                assert result.exit_code == 0, result.stderr
                proxied += json.loads(result.stdout)
                output = client.exec_run(["python3", "-c", CLIENT, server_ip, scheme, "50"]).output
                direct += json.loads(output)  # type: ignore[arg-type]  # no stream: bytes
            p50, _ = show(f"{scheme} request through the proxy", proxied)
            d50, _ = show(f"{scheme} request direct", direct)
            print(f"  -> {scheme}: the proxy adds {p50 - d50:.2f} ms per request (p50)")


async def creates(manager: ContainerManager, n: int) -> None:
    allow: list[float] = []
    plain: list[float] = []
    policy: list[float] = []  # the allowlist's own step: the policy put in force for the new container
    gateway = manager.backend.egress
    put_in_force = gateway.allow

    async def timed_allow(container_id: str, rules: EgressPolicy) -> None:
        t0 = time.perf_counter()
        await put_in_force(container_id, rules)
        policy.append(time.perf_counter() - t0)

    gateway.allow = timed_allow  # type: ignore[method-assign,assignment]
    for i in range(n):
        for network, out in (("allowlist", allow), ("sandbox", plain)) if i % 2 else \
                (("sandbox", plain), ("allowlist", allow)):
            task = f"bench-{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            egress = ["bench.test"] if network == "allowlist" else None
            await manager.create_container(task, "bench-egress", "python", network=network, egress=egress)
            await manager.exec_command(task, "true")
            out.append(time.perf_counter() - t0)
            await manager.destroy_container(task)
    gateway.allow = put_in_force  # type: ignore[method-assign]
    a50, _ = show("create -> first output, allowlist", allow)
    s50, _ = show("create -> first output, sandbox", plain)
    show("  of which the policy put in force (allow)", policy)
    print(f"  -> allowlist adds {a50 - s50:+.1f} ms per create (p50; the engine's own spread is wider)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--creates", type=int, default=20)
    args = parser.parse_args()
    client = docker.from_env()
    run = uuid.uuid4().hex[:6]
    upstream = client.networks.create(f"theappapp-bench-up-{run}", driver="bridge")
    containers = []
    with tempfile.TemporaryDirectory() as tmp:
        certificates(Path(tmp))
        try:
            server = client.containers.run("theappapp-python:latest", ["python3", "-c", SERVER], user="0",
                                           detach=True, network=upstream.name,
                                           volumes={tmp: {"bind": "/certs", "mode": "ro"}})
            containers.append(server)
            while b"ready" not in server.logs():
                time.sleep(0.1)
            server.reload()
            server_ip = server.attrs["NetworkSettings"]["Networks"][upstream.name]["IPAddress"]
            direct = client.containers.run("theappapp-python:latest", ["sleep", "infinity"], detach=True,
                                           network=upstream.name)
            containers.append(direct)
            config = RuntimeConfig.load(pool_enabled=False, monitor_enabled=False,
                                        installation_id=f"bench-egress-{run}",
                                        egress_network_name=f"theappapp-bench-egress-{run}",
                                        egress_subnet=free_subnet(client),
                                        egress_hosts=(f"bench.test={server_ip}",),
                                        egress_upstream_networks=(upstream.name,))
            manager = ContainerManager(config)
            await manager.startup()
            await manager._egress.require_ready(manager._owner_labels())
            try:
                print("1. one request on a new connection (in-container loops, same run)")
                await requests(manager, direct, server_ip, args.requests)
                print(f"2. task create (pool off), interleaved, {args.creates} each")
                await creates(manager, args.creates)
                await manager.delete_project_volume("bench-egress")
            finally:
                await manager.shutdown()
                client.containers.get(f"{config.egress.network_name}-proxy").remove(force=True)
                remove_sandbox_network(client, config.egress.network_name)  # the network and its rules
                shutil.rmtree(DEFAULT_ROOT / config.egress.network_name, ignore_errors=True)  # its policies
        finally:
            for container in containers:
                container.remove(force=True)
            upstream.remove()


if __name__ == "__main__":
    asyncio.run(main())
