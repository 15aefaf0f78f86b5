"""The HTTP path against the in-process call, measured in one run. Prints figures; not a test.

    python benchmarks/bench_server.py [--runs 200] [--cycles 30] [--requests 800]

A real `theappapp-sandbox serve` (its own process, bearer token, loopback) and an in-process
`ContainerManager` with the same settings, measured alternately so drift hits both alike; the HTTP
side is `runtime.remote.RemoteContainerManager`, the one-line switch an orchestrator makes. Each side
runs in a process of its own, so neither's background work (a destroyed container's removal) runs on
the other's event loop during its calls:
1. `exec_command("true")` on a live task, p50/p90, and the HTTP overhead per call.
2. A create -> exec("true") -> destroy cycle (warm pool off on both sides: the cycle, not the pool),
   with the overhead of each of the three calls.
3. Requests per second for exec("true") on one task with 16 concurrent clients, HTTP and in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

from benchlib import pct, show, timed

from runtime.config import RuntimeConfig
from runtime.remote import RemoteContainerManager
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


class Side:
    """One side of the comparison in a child process: it runs the steps the parent names and reports their times."""

    def __init__(self, kind: str, project: str, url: str = "", token: str = "") -> None:
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=side_main,
                                                                 args=(child, kind, project, url, token))
        self.proc.start()

    def ask(self, *request: object) -> list[float]:
        self.conn.send(request)
        answer = self.conn.recv()
        if isinstance(answer, str):
            raise SystemExit(f"benchmark side failed: {answer}")
        return list(answer)

    def stop(self) -> None:
        self.conn.send(("stop",))
        self.proc.join(120)


def side_main(conn: Connection, kind: str, project: str, url: str, token: str) -> None:
    asyncio.run(side_loop(conn, kind, project, url, token))


async def side_loop(conn: Connection, kind: str, project: str, url: str, token: str) -> None:
    manager: ContainerManager | RemoteContainerManager
    if kind == "in-process":
        manager = ContainerManager(RuntimeConfig.load())
        await manager.startup()
    else:
        manager = RemoteContainerManager(url, token)
    loop, count = asyncio.get_running_loop(), 0
    name = "local" if kind == "in-process" else "remote"  # task ids of their own: both share the project

    async def exec_true() -> None:
        await manager.exec_command(f"{name}-steady", "true")

    async def cycle(task: str) -> list[float]:
        """create -> exec -> destroy, each call's duration."""
        return [*await timed(1, lambda: manager.create_container(task, project, "python")),
                *await timed(1, lambda: manager.exec_command(task, "true")),
                *await timed(1, lambda: manager.destroy_container(task))]

    try:
        while True:
            # Waiting in a thread keeps this loop running between steps, as an orchestrator's would.
            step, *args = await loop.run_in_executor(None, conn.recv)
            try:
                if step == "stop":
                    return
                if step == "setup":
                    await manager.create_container(f"{name}-steady", project, "python")
                    for _ in range(10):  # warm the path (connections, imports, first agent execs)
                        await exec_true()
                    conn.send([])
                elif step == "exec":
                    conn.send(await timed(1, exec_true))
                elif step == "cycle":
                    count += 1
                    conn.send(await cycle(f"{name}-c{count}"))
                elif step == "rate":
                    conn.send([await rate(int(args[0]), 16, exec_true)])
            except Exception as err:  # said to the parent, which stops
                conn.send(f"{step}: {type(err).__name__}: {err}")
    finally:
        await manager.destroy_container(f"{name}-steady")
        await manager.shutdown()


def alternate(runs: int, local: Side, remote: Side, step: str) -> tuple[list[list[float]], list[list[float]]]:
    a, b = [], []
    for _ in range(runs):
        a.append(local.ask(step))
        b.append(remote.ask(step))
    return a, b


async def rate(n: int, clients: int, step: Callable[[], Awaitable[None]]) -> float:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await step()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return n / (time.perf_counter() - t0)


def main(runs: int, cycles: int, requests: int) -> None:
    run = uuid.uuid4().hex[:8]
    os.environ.update(ENV)
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-server-{run}")
    project = f"bench-{run}"
    with tempfile.TemporaryDirectory() as tmp:
        server, url, token = start_server(Path(tmp), run)
        local, remote = Side("in-process", project), Side("HTTP", project, url, token)
        try:
            local.ask("setup")
            remote.ask("setup")
            print(f"server benchmark: python image, network none, warm pool off, {url} (token auth), "
                  "HTTP through runtime.remote.RemoteContainerManager, each side in its own process")

            print('1. exec_command("true") on a live task')
            a, b = ([t for (t,) in side] for side in alternate(runs, local, remote, "exec"))
            show("in-process", a)
            show("HTTP (POST /v1/tasks/{id}/exec)", b)
            print(f"  HTTP overhead per call: p50 {(pct(b, 0.5) - pct(a, 0.5)) * 1000:+.1f} ms")

            print("2. create -> exec('true') -> destroy")
            x, y = alternate(cycles, local, remote, "cycle")
            show("in-process", [sum(times) for times in x])
            show("HTTP", [sum(times) for times in y])
            per_call = ", ".join(
                f"{name} {(pct([t[i] for t in y], 0.5) - pct([t[i] for t in x], 0.5)) * 1000:+.1f} ms"
                for i, name in enumerate(("create", "exec", "destroy")))
            overhead = pct([sum(t) for t in y], 0.5) - pct([sum(t) for t in x], 0.5)
            print(f"  HTTP overhead per cycle: p50 {overhead * 1000:+.1f} ms; per call, p50: {per_call}")

            print(f"3. exec('true') on one task, 16 concurrent clients, {requests} requests")
            (local_rate,), (remote_rate,) = local.ask("rate", requests), remote.ask("rate", requests)
            print(f"  in-process {local_rate:7.0f} /s   HTTP {remote_rate:7.0f} /s   "
                  f"(HTTP {remote_rate / local_rate:.2f}x)")
        finally:
            remote.stop()
            local.stop()
            server.terminate()
            server.wait(60)
            cleanup = ContainerManager(RuntimeConfig.load())
            asyncio.run(cleanup.delete_project_volume(project))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args()
    main(args.runs, args.cycles, args.requests)
