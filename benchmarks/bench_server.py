"""The HTTP path against the in-process call, measured in one run. Prints figures; not a test.

    python benchmarks/bench_server.py [--runs 200] [--cycles 30] [--requests 800]

A real `theappapp-sandbox serve` (its own process, bearer token, loopback) and an in-process
`ContainerManager` with the same settings, measured alternately so drift hits both alike:
1. `exec_command("true")` on a live task, p50/p90, and the HTTP overhead per call.
2. A create -> exec("true") -> destroy cycle (warm pool off on both sides: the cycle, not the pool).
3. Requests per second for exec("true") on one task with 16 concurrent clients, HTTP and in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from benchlib import pct, show

from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

ENV = {"THEAPPAPP_POOL_ENABLED": "false", "THEAPPAPP_MONITOR_ENABLED": "false", "THEAPPAPP_NETWORK": "none"}


def start_server(tmp: Path, run: str) -> tuple[subprocess.Popen[bytes], str, str]:
    tokens = tmp / "tokens.json"
    cli = [sys.executable, "-m", "runtime.cli"]
    token = subprocess.run([*cli, "token", "add", "--tokens", str(tokens), "--projects", "bench-*"],
                           capture_output=True, text=True, check=True).stdout.strip()
    log = tmp / "serve.log"
    env = {**os.environ, **ENV, "THEAPPAPP_INSTALLATION_ID": f"bench-server-{run}"}
    with log.open("wb") as err:
        proc = subprocess.Popen([*cli, "serve", "--port", "0", "--tokens", str(tokens), "--no-mcp"],
                                stderr=err, env=env)
    deadline = time.monotonic() + 30
    while not (found := re.search(r"serving on (http://[\d.]+:\d+)", log.read_text())):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"serve did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, found.group(1), token


async def alternate(runs: int, local: object, remote: object) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(runs):
        for step, out in ((local, a), (remote, b)):
            t0 = time.perf_counter()
            await step()  # type: ignore[operator]
            out.append(time.perf_counter() - t0)
    return a, b


async def rate(n: int, clients: int, step: object) -> float:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await step()  # type: ignore[operator]

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return n / (time.perf_counter() - t0)


async def main(runs: int, cycles: int, requests: int) -> None:
    run = uuid.uuid4().hex[:8]
    os.environ.update(ENV)
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-server-{run}")
    manager = ContainerManager(RuntimeConfig.load())
    await manager.startup()
    with tempfile.TemporaryDirectory() as tmp:
        server, url, token = start_server(Path(tmp), run)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                                 limits=limits)
        project = f"bench-{run}"
        try:
            await manager.create_container("local", project, "python")
            made = await http.post("/v1/tasks", json={"task_id": "remote", "project_id": project,
                                                      "language": "python"})
            made.raise_for_status()
            print(f"server benchmark: python image, network none, warm pool off, {url} (token auth)")

            async def local_exec() -> None:
                await manager.exec_command("local", "true")

            async def remote_exec() -> None:
                (await http.post("/v1/tasks/remote/exec", json={"command": "true"})).raise_for_status()

            for _ in range(10):  # warm both paths (connections, imports, first agent execs)
                await local_exec()
                await remote_exec()
            print('1. exec_command("true") on a live task')
            a, b = await alternate(runs, local_exec, remote_exec)
            show("in-process", a)
            show("HTTP (POST /v1/tasks/{id}/exec)", b)
            print(f"  HTTP overhead per call: p50 {(pct(b, 0.5) - pct(a, 0.5)) * 1000:+.1f} ms")

            count = 0

            async def local_cycle() -> None:
                nonlocal count
                count += 1
                await manager.create_container(f"c{count}", project, "python")
                await manager.exec_command(f"c{count}", "true")
                await manager.destroy_container(f"c{count}")

            async def remote_cycle() -> None:
                nonlocal count
                count += 1
                task = f"c{count}"
                (await http.post("/v1/tasks", json={"task_id": task, "project_id": project,
                                                    "language": "python"})).raise_for_status()
                (await http.post(f"/v1/tasks/{task}/exec", json={"command": "true"})).raise_for_status()
                (await http.delete(f"/v1/tasks/{task}")).raise_for_status()

            print("2. create -> exec('true') -> destroy")
            a, b = await alternate(cycles, local_cycle, remote_cycle)
            show("in-process", a)
            show("HTTP", b)
            print(f"  HTTP overhead per cycle: p50 {(pct(b, 0.5) - pct(a, 0.5)) * 1000:+.1f} ms")

            print(f"3. exec('true') on one task, 16 concurrent clients, {requests} requests")
            local_rate = await rate(requests, 16, local_exec)
            remote_rate = await rate(requests, 16, remote_exec)
            print(f"  in-process {local_rate:7.0f} /s   HTTP {remote_rate:7.0f} /s   "
                  f"(HTTP {remote_rate / local_rate:.2f}x)")
        finally:
            await http.delete("/v1/tasks/remote")
            await http.aclose()
            server.terminate()
            server.wait(60)
            await manager.destroy_container("local")
            await manager.delete_project_volume(project)
            await manager.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.cycles, args.requests))
