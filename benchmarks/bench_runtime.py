"""Manager overhead against raw docker-py, same hardened settings. Prints figures; not a test.

    python benchmarks/bench_runtime.py [--runs 30] [--language python]

Cycle: create -> first exec (`true`) -> destroy. "manager" does the same engine work as
raw (warm pool off, removal awaited); "manager, defaults" is the shipped configuration
(warm pool hands over a pre-created container, removal finishes in the background).
Exec: one round trip of `true` in a running container; raw is exec_create + exec_start
(+ exec_inspect, which the manager needs for the exit code, shown separately). Runs
alternate between the sides so drift in a shared engine hits all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid

import docker
from benchlib import remove_volumes, show

from runtime import labels
from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.backends.docker.network import remove_sandbox_network
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.naming import container_name, volume_name
from runtime.sandbox.spec import build_spec


async def main(runs: int, language: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-runtime-{run_id}")
    config = RuntimeConfig.load(
        network_name=f"theappapp-bench-runtime-{run_id}", pool_enabled=False, destroy_in_background=False
    )
    manager = ContainerManager(config)
    await manager.startup()
    shipped = ContainerManager(RuntimeConfig.load(network_name=config.network.name))
    await shipped.startup()
    client = docker.from_env(max_pool_size=16)
    api = client.api
    project = f"bench{run_id}"
    lang = manager.registry.resolve(language)
    api.create_volume(
        volume_name(project), labels={labels.MANAGED: "true", labels.INSTALLATION: config.installation_id}
    )
    try:
        loop = asyncio.get_running_loop()

        def raw_cycle(i: int) -> float:
            spec = build_spec(
                config, manager.registry, manager.owner, name=container_name(project, f"raw{i}"), project_id=project,
                language=lang, network=config.network.name,
                labels=manager.owner.labels(task_id=f"raw{i}", project_id=project, language=lang.name, ttl=600),
            )
            t0 = time.perf_counter()
            cid = api.create_container(**create_kwargs(spec, api.create_host_config(**host_config(spec))))["Id"]
            api.start(cid)
            ex = api.exec_create(cid, ["/bin/bash", "-c", "true"], user=config.security.user,
                                 workdir=config.security.workspace)
            api.exec_start(ex["Id"])
            api.exec_inspect(ex["Id"])
            api.remove_container(cid, force=True)
            return time.perf_counter() - t0

        async def manager_cycle(mgr: ContainerManager, task: str) -> float:
            t0 = time.perf_counter()
            await mgr.create_container(task, project, language)
            await mgr.exec_command(task, "true")
            await mgr.destroy_container(task)
            return time.perf_counter() - t0

        async def quiet(mgr: ContainerManager) -> None:
            """Wait for background removals and for the pool to be refilled, as between an orchestrator's tasks."""
            await mgr.settle()
            for _ in range(200):
                if mgr.pool is None or mgr.pool.ready(project, lang.name) >= mgr.config.pool.spares_per_key:
                    break
                await asyncio.sleep(0.025)
            await mgr.settle()

        raw: list[float] = []
        mgr: list[float] = []
        dflt: list[float] = []
        await manager_cycle(manager, "mgr-warmup")  # warm caches (volume, images) on every side
        await manager_cycle(shipped, "dflt-warmup")
        await quiet(shipped)
        await loop.run_in_executor(None, raw_cycle, -1)
        for i in range(runs):
            for side in random.sample(("mgr", "raw", "dflt"), 3):  # no side always goes first
                if side == "mgr":
                    mgr.append(await manager_cycle(manager, f"mgr{i}"))
                elif side == "raw":
                    raw.append(await loop.run_in_executor(None, raw_cycle, i))
                else:
                    dflt.append(await manager_cycle(shipped, f"dflt{i}"))
                    await quiet(shipped)  # its background refill and removal must not overlap the next measurement

        await manager.create_container("execbench", project, language)
        cid = manager.tasks["execbench"].container_id

        def raw_exec(inspect: bool) -> float:
            t0 = time.perf_counter()
            ex = api.exec_create(cid, ["/bin/bash", "-c", "true"], user=config.security.user,
                                 workdir=config.security.workspace)
            api.exec_start(ex["Id"])
            if inspect:
                api.exec_inspect(ex["Id"])
            return time.perf_counter() - t0

        ex_raw: list[float] = []
        ex_raw_inspect: list[float] = []
        ex_mgr: list[float] = []
        for _ in range(runs * 2):
            for side in random.sample(("mgr", "raw", "inspect"), 3):
                if side == "mgr":
                    t0 = time.perf_counter()
                    await manager.exec_command("execbench", "true")
                    ex_mgr.append(time.perf_counter() - t0)
                else:
                    target = ex_raw if side == "raw" else ex_raw_inspect
                    target.append(await loop.run_in_executor(None, raw_exec, side == "inspect"))

        print(f"runtime benchmark: {language}, {runs} cycles, {runs * 2} execs, engine {client.version()['Version']}")
        print("full cycle (create -> first exec -> destroy)")
        m50, _ = show("manager (same engine work as raw)", mgr)
        r50, _ = show("raw docker-py", raw)
        d50, _ = show("manager, defaults (pool, bg removal)", dflt)
        print(f"  ratio p50 manager/raw = {m50 / r50:.3f}  (goal <= 1.15); defaults/raw = {d50 / r50:.3f}")
        print("exec round trip (`true`)")
        e50, _ = show("manager exec_command", ex_mgr)
        x50, _ = show("raw exec_create+exec_start", ex_raw)
        i50, _ = show("raw + exec_inspect (exit code)", ex_raw_inspect)
        print(f"  manager - raw = {e50 - x50:+.1f} ms p50 (goal <= +5 ms); vs raw+inspect {e50 - i50:+.1f} ms")
    finally:
        await manager.shutdown()
        await shipped.shutdown()
        # Raw-side containers of an interrupted run: this run's project only (its id is fresh).
        for container in api.containers(all=True, filters={"label": f"{labels.PROJECT}={project}"}):
            api.remove_container(container["Id"], force=True)
        theirs = {"label": f"{labels.PROJECT}={project}"}
        remove_volumes(api, (v["Name"] for v in api.volumes(filters=theirs).get("Volumes") or ()))
        remove_sandbox_network(client, config.network.name)
        client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--language", default="python")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.language))
