"""Start-up costs that depend on the language or the OCI runtime. Prints figures; not a test.

    python benchmarks/bench_languages.py [--runs 3]

1. Go: the first `go run` of hello world in a new project, with the project's build cache
   seeded from the image (the default) and with an empty one (GOCACHE pointed at /tmp, as
   every task had it before); and create + start for a new project (its cache volume is
   seeded then) against the same project's next task.
2. gVisor, when the engine has runsc: create + start + `true` under runsc and runc, and how
   long an exec that runs out of memory takes to return (its deadline is 60 s; gVisor's OOM
   can kill the whole sandbox and the exec must notice).
Each project is deleted afterwards, volumes and caches included.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import docker
from benchlib import show

from runtime.config import RuntimeConfig
from runtime.registry import get_registry
from runtime.sandbox.manager import ContainerManager


async def go_first_run(runs: int) -> None:
    go = get_registry().languages["go"]
    manager = ContainerManager(RuntimeConfig.load(network="none", pool_enabled=False))
    await manager.startup()
    seeded: list[float] = []
    empty: list[float] = []
    new_project: list[float] = []
    same_project: list[float] = []
    try:
        for i in range(runs):
            for bucket, env in ((seeded, None), (empty, {"GOCACHE": "/tmp/empty-go-cache"})):
                project = f"bench-go-{uuid.uuid4().hex[:8]}"
                t0 = time.perf_counter()
                await manager.create_container(f"a{i}", project, "go")
                new_project.append(time.perf_counter() - t0)
                await manager.write_files(f"a{i}", {"main.go": go.hello.code})
                t0 = time.perf_counter()
                result = await manager.exec_command(f"a{i}", "go run main.go", timeout=120, env=env)
                bucket.append(time.perf_counter() - t0)
                assert result.stdout == "hello, world\n", result
                await manager.destroy_container(f"a{i}")
                await manager.settle()
                t0 = time.perf_counter()
                await manager.create_container(f"b{i}", project, "go")
                same_project.append(time.perf_counter() - t0)
                await manager.destroy_container(f"b{i}")
                await manager.settle()
                await manager.delete_project_volume(project)
    finally:
        await manager.shutdown()
    print("Go: first `go run` of hello world in a new project")
    seeded50, _ = show("build cache seeded from the image (default)", seeded)
    empty50, _ = show("empty build cache (as before)", empty)
    print(f"    ratio {empty50 / seeded50:.0f}x")
    print("Go: create + start")
    show("new project (its cache volume is seeded)", new_project)
    show("the same project's next task", same_project)


async def gvisor(runs: int) -> None:
    if "runsc" not in (docker.from_env().info().get("Runtimes") or {}):
        print("gVisor: runsc is not registered with the engine (scripts/enable-gvisor.sh); skipped")
        return
    cycle: dict[str, list[float]] = {"runc": [], "runsc": []}
    oom: list[float] = []
    for runtime in ("runc", "runsc"):
        manager = ContainerManager(RuntimeConfig.load(network="none", runtime=runtime, pool_enabled=False))
        await manager.startup()
        project = f"bench-gv-{uuid.uuid4().hex[:8]}"
        try:
            for i in range(runs):
                t0 = time.perf_counter()
                await manager.create_container(f"c{i}", project, "python")
                await manager.exec_command(f"c{i}", "true")
                cycle[runtime].append(time.perf_counter() - t0)
                if runtime == "runsc":
                    t0 = time.perf_counter()
                    result = await manager.exec_command(f"c{i}", "python3 -c 'x = bytearray(4 * 1024**3)'", timeout=60)
                    oom.append(time.perf_counter() - t0)
                    assert result.oom_killed and not result.timed_out, result
                await manager.destroy_container(f"c{i}")
            await manager.settle()
            await manager.delete_project_volume(project)
        finally:
            await manager.shutdown()
    print("gVisor: create + start + `true` (python image, no network)")
    show("runc", cycle["runc"])
    show("runsc", cycle["runsc"])
    print("gVisor: an exec that runs out of memory returns after (deadline 60 s)")
    show("runsc", oom)


async def main(args: argparse.Namespace) -> None:
    await go_first_run(args.runs)
    await gvisor(args.runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
