"""The HTTP path against the in-process call, measured in one run. Prints figures; not a test.

    python benchmarks/bench_server.py [--runs 200] [--cycles 30] [--requests 800]

A real `theappapp-sandbox serve` (its own process, bearer token, loopback) and an in-process
`ContainerManager` with the same settings, measured alternately so drift hits both alike; the HTTP
side is `runtime.remote.RemoteContainerManager`, the one-line switch an orchestrator makes. Each side
runs in a process of its own, so neither's background work (a destroyed container's removal) runs on
the other's event loop during its calls:
1. `exec_command("true")` on a live task, p50/p90, and the HTTP overhead per call: the difference of the
   medians, and paired: each HTTP call's time less the manager's time its answer reports (`Server-Timing`).
2. A create -> exec("true") -> destroy cycle (warm pool off on both sides: the cycle, not the pool),
   with the overhead of each of the three calls, both ways (a create's engine time varies by tens of ms
   from one to the next, so its difference of medians is noisy; the paired figure is not).
3. Requests per second for exec("true") on one task with 16 concurrent clients, HTTP and in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import httpx2
from benchlib import pct, show, timed

from runtime.config import RuntimeConfig
from runtime.remote import DEFAULT_TIMEOUT, RemoteContainerManager
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
            stop_server(proc)
            raise SystemExit(f"serve did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, found.group(1), token


class Side:
    """One side of the comparison in a child process: it runs the steps the parent names and reports their times."""

    def __init__(self, kind: str, project: str, url: str = "", token: str = "") -> None:
        self.kind = kind
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=side_main,
                                                                 args=(child, kind, project, url, token))
        self.proc.start()

    def ask(self, *request: object) -> list[float]:
        try:
            self.conn.send(request)
            answer = self.conn.recv()
        except (EOFError, OSError) as err:
            raise SystemExit(f"benchmark side {self.kind} died ({type(err).__name__}): its traceback is above") from err
        if isinstance(answer, str):
            raise SystemExit(f"benchmark side failed: {answer}")
        return list(answer)

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):  # a side that died cannot be told
            self.conn.send(("stop",))
        self.proc.join(120)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


def side_main(conn: Connection, kind: str, project: str, url: str, token: str) -> None:
    asyncio.run(side_loop(conn, kind, project, url, token))


async def side_loop(conn: Connection, kind: str, project: str, url: str, token: str) -> None:
    manager: ContainerManager | RemoteContainerManager
    served: list[float] = []  # HTTP: the manager's time in each answer (Server-Timing), in seconds
    if kind == "in-process":
        manager = ContainerManager(RuntimeConfig.load())
        await manager.startup()
    else:
        async def note_timing(response: httpx2.Response) -> None:
            name, _, ms = response.headers.get("server-timing", "").partition(";dur=")
            served.append(float(ms) / 1000 if name == "sandbox" else float("nan"))

        client = httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                    timeout=DEFAULT_TIMEOUT, event_hooks={"response": [note_timing]})
        manager = RemoteContainerManager(url, token, client=client)
    loop, count = asyncio.get_running_loop(), 0
    name = "local" if kind == "in-process" else "remote"  # task ids of their own: both share the project

    async def exec_true() -> None:
        await manager.exec_command(f"{name}-steady", "true")

    async def cycle(task: str) -> list[float]:
        """create -> exec -> destroy: each call's duration, then (HTTP) the manager's time in each answer."""
        served.clear()
        took = [*await timed(1, lambda: manager.create_container(task, project, "python")),
                *await timed(1, lambda: manager.exec_command(task, "true")),
                *await timed(1, lambda: manager.destroy_container(task))]
        return took + served

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
                    served.clear()
                    conn.send(await timed(1, exec_true) + served)
                elif step == "cycle":
                    count += 1
                    conn.send(await cycle(f"{name}-c{count}"))
                elif step == "rate":
                    conn.send([await rate(int(args[0]), 16, exec_true)])
            except Exception as err:  # said to the parent, which stops
                conn.send(f"{step}: {type(err).__name__}: {err}")
    finally:
        try:
            with contextlib.suppress(Exception):  # never made, or already gone
                await manager.destroy_container(f"{name}-steady")
        finally:
            await manager.shutdown()


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()  # a graceful stop: the service destroys the tasks its callers left
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()  # reaped: cleanup takes a zombie's containers for a live owner's


def remove_leftovers(project: str) -> None:
    """This run's containers (their managers are gone, so cleanup takes them), then the project's volume."""
    done = subprocess.run([sys.executable, "-m", "runtime.cleanup"], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"cleanup of this run's leftovers failed: {done.stderr.strip()}", file=sys.stderr)
    asyncio.run(ContainerManager(RuntimeConfig.load()).delete_project_volume(project))


def own(http: list[list[float]], call: int) -> str:
    """p50 of what each HTTP call took beyond the manager's time the server reported for it (Server-Timing):
    the service's own cost, paired call by call, free of the engine's variation from one call to the next."""
    calls = len(http[0]) // 2
    return f"{pct([t[call] - t[calls + call] for t in http], 0.5) * 1000:+.1f}"


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
    # This run's own installation, on every side and in the cleanup: never anybody else's containers.
    os.environ["THEAPPAPP_INSTALLATION_ID"] = f"bench-server-{run}"
    project = f"bench-{run}"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_leftovers, project)  # last: whatever a side that died left behind
        server, url, token = start_server(Path(tmp), run)
        cleanup.callback(stop_server, server)
        local = Side("in-process", project)
        cleanup.callback(local.stop)
        remote = Side("HTTP", project, url, token)
        cleanup.callback(remote.stop)
        local.ask("setup")
        remote.ask("setup")
        print(f"server benchmark: python image, network none, warm pool off, {url} (token auth), "
              "HTTP through runtime.remote.RemoteContainerManager, each side in its own process")

        print('1. exec_command("true") on a live task')
        x, y = alternate(runs, local, remote, "exec")
        a, b = [t[0] for t in x], [t[0] for t in y]
        show("in-process", a)
        show("HTTP (POST /v1/tasks/{id}/exec)", b)
        print(f"  HTTP overhead per call: p50 {(pct(b, 0.5) - pct(a, 0.5)) * 1000:+.1f} ms "
              f"(difference of the medians); {own(y, 0)} ms (paired)")

        print("2. create -> exec('true') -> destroy")
        x, y = alternate(cycles, local, remote, "cycle")
        show("in-process", [sum(times) for times in x])
        show("HTTP", [sum(times[:3]) for times in y])
        per_call = ", ".join(
            f"{name} {(pct([t[i] for t in y], 0.5) - pct([t[i] for t in x], 0.5)) * 1000:+.1f} ms"
            for i, name in enumerate(("create", "exec", "destroy")))
        overhead = pct([sum(t[:3]) for t in y], 0.5) - pct([sum(t) for t in x], 0.5)
        print(f"  HTTP overhead per cycle: p50 {overhead * 1000:+.1f} ms; per call, p50: {per_call}")
        print("  HTTP path's own time per call (paired), p50: " +
              ", ".join(f"{name} {own(y, i)} ms" for i, name in enumerate(("create", "exec", "destroy"))))

        print(f"3. exec('true') on one task, 16 concurrent clients, {requests} requests")
        (local_rate,), (remote_rate,) = local.ask("rate", requests), remote.ask("rate", requests)
        print(f"  in-process {local_rate:7.0f} /s   HTTP {remote_rate:7.0f} /s   "
              f"(HTTP {remote_rate / local_rate:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args()
    main(args.runs, args.cycles, args.requests)
