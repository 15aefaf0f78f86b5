"""Warm pool against raw docker-py with the same hardened settings, in one run. Prints figures; not a test.

    python benchmarks/bench_pool.py [--runs 20] [--seconds 20] [--rounds 2] [--levels 1 4 8 16] [--spares 8]
                                    [--only latency throughput idle workloads] [--network NAME] [--raw-network NAME]

1. Task start -> first command output (`echo hi`), p50/p90: manager with a spare ready,
   manager with no spare for the key (pool on, fresh project), manager with the pool off;
   raw: exec_create+exec_start on a running container, and create+start+exec.
   Latency runs alternate sides and let the engine go quiet between runs (no removal or
   refill still in flight), so both sides see the same idle engine.
2. The destroy call (manager) against raw remove_container(force=True).
3. Sustained create -> exec `true` -> destroy at each concurrency, `--rounds` rounds of
   `--seconds` per side, the side that goes first alternating: tasks/s (mean of the rounds),
   where the manager's time includes finishing its background removals. Both sides get the
   exec's exit code (raw: create, start, inspect, as docker-py's `exec_run`). Each worker has
   its own project, as an orchestrator's agents would.
4. The pool's idle cost: `--spares` idle spares, memory and CPU (over 15 s) from each container's cgroup.
5. Workloads, with the pool's defaults (`--only workloads`): task start -> first output of
   `python3 -c 'print(1)'` for back-to-back tasks on one project, tasks 0.5 s apart, 50 projects
   drawn Zipf-distributed 0.3 s apart, and a 17th project prewarmed after 16 one-off projects;
   raw docker-py's create+start+exec for the same program in the same run. Beside the tasks 0.5 s
   apart: the same program, and `echo 1`, 0.5 s apart in one sandbox already running (what any
   start would still take), so the part a warm start adds is printed too.

Both sides run under the engine's default OCI runtime, or under THEAPPAPP_RUNTIME's (e.g. crun).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from benchlib import remove_volumes, show

from runtime import labels
from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.backends.docker.network import ensure_sandbox_network, remove_sandbox_network
from runtime.config import RuntimeConfig
from runtime.errors import NetworkPolicyError
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.naming import container_name, volume_name
from runtime.sandbox.pool import WarmPool
from runtime.sandbox.spec import ContainerSpec, build_spec


class Raw:
    """The same container, made and driven with plain docker-py calls."""

    def __init__(self, manager: ContainerManager, language: str, network: str) -> None:
        self.network = network
        self.config = manager.config
        self.owner = manager.owner
        self.registry = manager.registry
        self.lang = manager.registry.resolve(language)
        self.client = docker.from_env(max_pool_size=64)
        self.api = self.client.api

    def spec(self, project: str, task: str) -> ContainerSpec:
        return build_spec(
            self.config, self.registry, self.owner, name=container_name(project, task), project_id=project,
            language=self.lang, network=self.network,
            labels=self.owner.labels(task_id=task, project_id=project, language=self.lang.name, ttl=600),
        )

    def volume(self, project: str) -> None:
        self.api.create_volume(
            volume_name(project), labels={labels.MANAGED: "true", labels.INSTALLATION: self.config.installation_id}
        )

    def create_started(self, project: str, task: str) -> str:
        spec = self.spec(project, task)
        built = self.api.create_host_config(**host_config(spec))
        cid = str(self.api.create_container(**create_kwargs(spec, built))["Id"])
        self.api.start(cid)
        return cid

    def exec(self, cid: str, command: str) -> bytes:
        """The command's output: exec create + start (what the first-output latency needs)."""
        return self._exec(cid, command)[1]

    def exec_run(self, cid: str, command: str) -> int:
        """The command's exit code too, as docker-py's `Container.exec_run` gets it: create, start, inspect."""
        exec_id, _ = self._exec(cid, command)
        code: int = self.api.exec_inspect(exec_id)["ExitCode"]
        return code

    def _exec(self, cid: str, command: str) -> tuple[str, bytes]:
        argv = ["/bin/bash", "-c", command]
        ex = self.api.exec_create(cid, argv, user=self.config.security.user, workdir=self.config.security.workspace)
        out: bytes = self.api.exec_start(ex["Id"])
        return str(ex["Id"]), out

    def remove(self, cid: str) -> None:
        self.api.remove_container(cid, force=True)


def remove_network(client: docker.DockerClient, name: str) -> None:
    """Remove a benchmark's sandbox network, waiting a little for the engine to release its endpoints."""
    for attempt in range(6):  # the engine releases endpoints a moment after the last removal
        try:
            remove_sandbox_network(client, name)
            return
        except NetworkPolicyError as err:
            if attempt == 5:
                print(f"note: {err} (Docker 20.10 can lose a network's endpoint count under "
                      "concurrent churn; a daemon restart reconciles it)")
            time.sleep(0.5)


def pool_of(manager: ContainerManager) -> WarmPool:
    assert manager.pool is not None
    return manager.pool


async def quiet(manager: ContainerManager) -> None:
    """No removal and no spare creation in flight."""
    await manager.settle()
    if manager.pool is not None:
        await manager.pool.quiesce()
    await manager.settle()


async def latency(manager: ContainerManager, cold: ContainerManager, raw: Raw, runs: int, tag: str) -> None:
    loop = asyncio.get_running_loop()
    run = loop.run_in_executor
    project = f"warm{tag}"
    raw.volume(project)
    await manager.prewarm(project, "python", 1)
    warm: list[float] = []
    miss: list[float] = []
    off: list[float] = []
    raw_exec: list[float] = []
    raw_cold: list[float] = []
    destroy: list[float] = []
    raw_remove: list[float] = []
    keeper = await run(None, raw.create_started, project, f"keeper{tag}")

    def timed_raw_exec() -> float:
        t0 = time.perf_counter()
        out = raw.exec(keeper, "echo hi")
        assert out == b"hi\n", out
        return time.perf_counter() - t0

    def timed_raw_cold(i: int) -> tuple[float, float]:
        p = f"rc{i}{tag}"
        raw.volume(p)  # volumes exist before the clock starts, as the manager's do
        t0 = time.perf_counter()
        cid = raw.create_started(p, "t")
        out = raw.exec(cid, "echo hi")
        took = time.perf_counter() - t0
        assert out == b"hi\n", out
        t1 = time.perf_counter()
        raw.remove(cid)
        return took, time.perf_counter() - t1

    async def timed_start(mgr: ContainerManager, task: str, proj: str) -> float:
        t0 = time.perf_counter()
        await mgr.create_container(task, proj, "python")
        result = await mgr.exec_command(task, "echo hi")
        took = time.perf_counter() - t0
        assert result.stdout == "hi\n", result
        return took

    for i in range(runs):
        # With a spare ready (the pool refills the key between runs).
        while pool_of(manager).ready(project, "python") < 1:
            await manager.prewarm(project, "python", 1)
            await asyncio.sleep(0.005)
        await quiet(manager)
        warm.append(await timed_start(manager, f"w{i}", project))
        t0 = time.perf_counter()
        await manager.destroy_container(f"w{i}")
        destroy.append(time.perf_counter() - t0)
        await quiet(manager)
        raw_exec.append(await run(None, timed_raw_exec))
        # Without a spare: a project the pool has never seen (its volume made beforehand).
        p = f"miss{i}{tag}"
        raw.volume(p)
        await quiet(manager)
        miss.append(await timed_start(manager, f"m{i}", p))
        await manager.destroy_container(f"m{i}")
        await quiet(manager)
        await pool_of(manager).drop(p)  # the spare that miss made for a project we never use again
        took, removed = await run(None, timed_raw_cold, i)
        raw_cold.append(took)
        raw_remove.append(removed)
        p = f"off{i}{tag}"
        raw.volume(p)
        off.append(await timed_start(cold, f"o{i}", p))
        await cold.destroy_container(f"o{i}")
        await quiet(cold)
    await run(None, raw.remove, keeper)

    print("task start -> first command output (`echo hi`)")
    w50, _ = show("manager, spare ready", warm)
    x50, _ = show("raw exec_create+exec_start (running container)", raw_exec)
    print(f"    spare ready: p50 {w50:.1f} ms (goal <= 60) and raw exec + {w50 - x50:+.1f} ms (goal <= +20)")
    m50, _ = show("manager, no spare (pool on, new project)", miss)
    o50, _ = show("manager, pool off", off)
    c50, _ = show("raw create+start+exec", raw_cold)
    print(f"    no spare: {m50 / c50:.3f}x raw (goal <= 1.1x); pool off: {o50 / c50:.3f}x raw")
    print("destroy call")
    d50, _ = show("manager destroy_container (background removal)", destroy)
    show("raw remove_container(force=True)", raw_remove)
    print(f"    destroy p50 {d50:.2f} ms (goal <= 10)")


async def throughput(
    manager: ContainerManager, raw: Raw, levels: list[int], seconds: float, rounds: int, tag: str
) -> None:
    print(
        f"sustained create -> exec `true` -> destroy, {rounds} round(s) of {seconds:.0f} s per side and level, "
        "sides alternating which goes first (tasks/s)"
    )
    for n in levels:
        await level(manager, raw, n, seconds, rounds, tag)


async def level(manager: ContainerManager, raw: Raw, n: int, seconds: float, rounds: int, tag: str) -> None:
    projects = [f"tp{n}x{w}{tag}" for w in range(n)]
    for p in projects:
        raw.volume(p)
    raw_rates: list[float] = []
    mgr_rates: list[float] = []
    before = dict(pool_of(manager).counts)
    tasks = 0
    for r in range(rounds):
        # Odd rounds run the manager first: neither side always meets the engine the other left.
        for side in (("raw", "manager") if r % 2 == 0 else ("manager", "raw")):
            await quiet(manager)
            if side == "raw":
                raw_rates.append(await asyncio.to_thread(raw_level, raw, projects, seconds, f"{r}"))
            else:
                rate, done = await manager_level(manager, projects, seconds, f"{n}x{r}")
                mgr_rates.append(rate)
                tasks += done
    got = {k: v - before.get(k, 0) for k, v in pool_of(manager).counts.items()}
    mgr, rw = statistics.mean(mgr_rates), statistics.mean(raw_rates)
    spread = [m / w for m, w in zip(mgr_rates, raw_rates, strict=True)]
    print(
        f"  concurrency {n:>2}: manager {mgr:6.2f}/s   raw {rw:6.2f}/s   ratio {mgr / rw:.2f} (goal >= 1.0; "
        f"rounds {min(spread):.2f}-{max(spread):.2f})   spares used {got.get('hit', 0)}/{tasks}"
    )
    # Engine work the raw side does not do: spares made but not handed over are pure waste under load.
    print(
        f"      spares made {got.get('made', 0)}, handed over {got.get('hit', 0)} "
        f"(after waiting {got.get('waited', 0)}), refills skipped while the engine was busy {got.get('busy', 0)}"
    )
    print("      rounds (manager/raw tasks/s, who went first): " + ", ".join(
        f"{m:.2f}/{w:.2f} {'raw' if r % 2 == 0 else 'manager'}"
        for r, (m, w) in enumerate(zip(mgr_rates, raw_rates, strict=True))))
    for p in projects:
        await pool_of(manager).drop(p)
    await quiet(manager)


def raw_level(raw: Raw, projects: list[str], seconds: float, tag: str) -> float:
    """Raw: a thread per project, each a loop of create, start, exec (with its exit code), remove."""
    done = [0] * len(projects)
    stop = time.perf_counter() + seconds

    def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            cid = raw.create_started(projects[w], f"r{tag}x{i}")
            raw.exec_run(cid, "true")
            raw.remove(cid)
            i += 1
        done[w] = i

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(len(projects))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


async def manager_level(manager: ContainerManager, projects: list[str], seconds: float, tag: str) -> tuple[float, int]:
    """Manager: a coroutine per project; the clock stops when every background removal has finished too."""
    count = [0] * len(projects)
    stop = time.perf_counter() + seconds

    async def task_loop(w: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            task = f"m{tag}x{w}x{i}"
            await manager.create_container(task, projects[w], "python")
            await manager.exec_command(task, "true")
            await manager.destroy_container(task)
            i += 1
        count[w] = i

    t0 = time.perf_counter()
    await asyncio.gather(*(task_loop(w) for w in range(len(projects))))
    await manager.settle()
    return sum(count) / (time.perf_counter() - t0), sum(count)


def cgroup_memory(cid: str) -> tuple[int | None, int | None]:
    """(memory.usage_in_bytes, rss from memory.stat) of a container on cgroup v1, or v2's memory.current."""
    for base in (Path(f"/sys/fs/cgroup/memory/docker/{cid}"), Path(f"/sys/fs/cgroup/docker/{cid}")):
        usage = base / "memory.usage_in_bytes"
        if not usage.exists():
            usage = base / "memory.current"
        if usage.exists():
            stat = {k: int(v) for k, v in (line.split() for line in (base / "memory.stat").read_text().splitlines())}
            return int(usage.read_text()), stat.get("total_rss", stat.get("anon"))
    return None, None


def cgroup_cpu_ns(cid: str) -> int | None:
    """CPU time a container has used, in ns: cgroup v1's cpuacct.usage, or v2's cpu.stat usage_usec."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text())
    v2 = Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")
    if v2.exists():
        stat = dict(line.split() for line in v2.read_text().splitlines())
        return int(stat["usage_usec"]) * 1000
    return None


IDLE_WINDOW = 15.0  # seconds: three lease renewals


async def idle_cost(manager: ContainerManager, raw: Raw, spares: int, tag: str) -> None:
    await quiet(manager)
    pool = pool_of(manager)
    keys = [f"idle{k}{tag}" for k in range(max(1, spares // 2))]
    per_key = -(-spares // len(keys))
    for p in keys:
        await manager.prewarm(p, "python", per_key)
    await asyncio.sleep(2.0)  # let the keeper settle
    ids = [s.container_id for s in pool.spares() if s.key[0] in keys][:spares]
    readings = [cgroup_memory(cid) for cid in ids]
    usage = [u for u, _ in readings if u is not None]
    rss = [r for _, r in readings if r is not None]
    print(f"pool idle cost: {len(ids)} idle spares")
    if usage:
        print(
            f"  cgroup memory.usage_in_bytes: {statistics.mean(usage) / 2**20:.2f} MiB each (incl. page cache), "
            f"{sum(usage) / 2**20:.1f} MiB total"
        )
    if rss:
        print(f"  cgroup rss: {statistics.mean(rss) / 2**20:.2f} MiB each, {sum(rss) / 2**20:.1f} MiB total")
    # Network namespace holders (runtime/backends/docker/netns.py) kept for these projects: part of the cost.
    holders = [c["Id"] for c in raw.api.containers(filters={"label": [f"{labels.ROLE}=netns"]})
               if c["Labels"].get(labels.PROJECT) in keys]
    held = [r for _, r in (cgroup_memory(cid) for cid in holders) if r is not None]
    if held:
        print(f"  network namespace holders of these projects: {len(held)}, cgroup rss "
              f"{statistics.mean(held) / 2**20:.2f} MiB each, {sum(held) / 2**20:.1f} MiB total")
    if ids:
        stats = await asyncio.get_running_loop().run_in_executor(None, lambda: raw.api.stats(ids[0], stream=False))
        print(f"  docker stats (one spare): memory usage {stats['memory_stats'].get('usage', 0) / 2**20:.2f} MiB")
    before = [cgroup_cpu_ns(cid) for cid in ids]
    mine = time.process_time()
    await asyncio.sleep(IDLE_WINDOW)
    spent = [b2 - b1 for b1, b2 in zip(before, (cgroup_cpu_ns(cid) for cid in ids), strict=True)
             if b1 is not None and b2 is not None]
    if spent:
        print(f"  cpu while idle for {IDLE_WINDOW:.0f} s: {statistics.mean(spent) / 1e6 / IDLE_WINDOW:.3f} ms/s "
              f"per spare (in its cgroup); the manager renewing their leases: "
              f"{(time.process_time() - mine) * 1000 / IDLE_WINDOW / len(ids):.3f} ms/s per spare")
    print(f"  pool counters over the run: {dict(pool.counts)}")


async def first_output(manager: ContainerManager, task: str, project: str) -> float:
    """create_container, then the first chunk of `python3 -c 'print(1)'`; the task is destroyed after."""
    t0 = time.perf_counter()
    await manager.create_container(task, project, "python")
    stream = manager.exec_stream(task, "python3 -c 'print(1)'")
    took = 0.0
    async for _chunk in stream:
        took = took or time.perf_counter() - t0
    await manager.destroy_container(task)
    if not took:
        raise RuntimeError(f"task {task} printed nothing: no first output to time")
    return took


async def spaced_outputs(manager: ContainerManager, task: str, project: str, runs: int, command: str,
                         gap: float = 0.5) -> list[float]:
    """`command`'s first output, `runs` times, `gap` seconds apart, in one sandbox started before."""
    await manager.create_container(task, project, "python")
    took = []
    try:
        for _ in range(runs):
            await asyncio.sleep(gap)
            t0 = time.perf_counter()
            first = 0.0
            async for _chunk in manager.exec_stream(task, command):
                first = first or time.perf_counter()
            if not first:
                raise RuntimeError(f"{command!r} printed nothing: no first output to time")
            took.append(first - t0)
    finally:
        await manager.destroy_container(task)
    return took


# Run inside a sandbox: spawns `python3 -c 'print(1)'` every 0.5 s and prints, as JSON, each one's time
# from spawn to its first output, in seconds. No manager, engine or agent is on that path.
SPAWN_TIMER = """
import json, os, sys, time
took = []
for _ in range(int(sys.argv[1])):
    time.sleep(0.5)
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.posix_spawnp("python3", ["python3", "-c", "print(1)"], os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    if not os.read(r, 16):
        sys.exit("python3 printed nothing")
    took.append(time.perf_counter() - t0)
    os.waitpid(pid, 0)
    os.close(r)
print(json.dumps(took))
"""


async def spawned_alone(manager: ContainerManager, task: str, project: str, runs: int) -> list[float]:
    """`python3 -c 'print(1)'` spawned by a process inside a running sandbox, 0.5 s apart: spawn -> first output."""
    import json
    import shlex

    await manager.create_container(task, project, "python")
    try:
        result = await manager.exec_command(task, f"python3 -c {shlex.quote(SPAWN_TIMER)} {runs}",
                                            timeout=runs * 0.5 + 30)
        if result.exit_code != 0:
            raise RuntimeError(f"the in-sandbox timer failed: {result.stderr.strip()}")
        took: list[float] = json.loads(result.stdout)
        return took
    finally:
        await manager.destroy_container(task)


async def workloads(network: str, raw: Raw, runs: int, tag: str) -> None:
    import random

    manager = ContainerManager(RuntimeConfig.load(network_name=network))  # the pool's defaults
    await manager.startup()
    loop = asyncio.get_running_loop()
    print("workloads (pool defaults): task start -> first output of python3 -c 'print(1)'")
    try:
        p = f"b2b{tag}"
        b2b = [await first_output(manager, f"b{i}", p) for i in range(runs * 2)]

        def raw_cycle(i: int) -> float:
            t0 = time.perf_counter()
            cid = raw.create_started(p, f"raw{i}")
            raw.exec(cid, "python3 -c 'print(1)'")
            took = time.perf_counter() - t0
            raw.remove(cid)
            return took

        raws = [await loop.run_in_executor(None, raw_cycle, i) for i in range(runs)]
        b50, _ = show("back-to-back, one project", b2b[2:])  # the first two: before the key showed any demand
        r50, _ = show("raw create+start+exec, same run", raws)
        # The goal of <= 150 ms was set on a host where raw docker-py took 286 ms to first output in the same
        # run (0.52 of raw); this host's raw figure varies by run (400-530 ms), so the ratio is printed too.
        print(f"    back-to-back p50 / raw p50 = {b50 / r50:.2f} (the 150 ms goal was 0.52 of raw where it was set)")
        # Back-to-back waits are two kinds (a spare ready, or the next one still starting), so the p50 swings
        # with their mix from run to run; the mean follows the host's CPU per task more steadily.
        b_mean, r_mean = statistics.mean(b2b[2:]) * 1000, statistics.mean(raws) * 1000
        print(f"    back-to-back mean {b_mean:.1f} ms, raw mean {r_mean:.1f} ms")
        await manager.settle()
        spaced = []
        for i in range(runs):
            await asyncio.sleep(0.5)
            spaced.append(await first_output(manager, f"s{i}", f"spaced{tag}"))
        s50, _ = show("0.5 s between tasks, one project", spaced[1:])
        # What any start would still take: the same program's first output in a sandbox already running,
        # asked as often. The goal of <= 10 ms with the agent is below this on a host where python3 alone
        # takes ~10 ms to print (the `alone` line below measures it).
        again = await spaced_outputs(manager, f"again{tag}", f"spaced{tag}", runs, "python3 -c 'print(1)'")
        again50, _ = show("  the same program in a running sandbox", again)
        echoes = await spaced_outputs(manager, f"echo{tag}", f"spaced{tag}", runs, "echo 1")
        show("  `echo 1` in a running sandbox", echoes)
        # The floor under all of these: the program alone, spawned inside the sandbox by a process there.
        alone = await spawned_alone(manager, f"alone{tag}", f"spaced{tag}", runs)
        show("  python3 alone, spawned inside the sandbox", alone)
        print(f"    a warm start's own part: {s50 - again50:.1f} ms of the p50 (the hand-over, a fresh sandbox's first "
              "command, and the replacement spare starting beside it)")
        rng = random.Random(7)
        projects = [f"z{k}{tag}" for k in range(50)]
        weights = [1 / (k + 1) ** 1.1 for k in range(50)]
        zipf = []
        for i in range(runs * 5):
            await asyncio.sleep(0.3)
            zipf.append(await first_output(manager, f"z{i}", rng.choices(projects, weights)[0]))
        show("50 projects, Zipf, 0.3 s between tasks", zipf)
        for k in range(16):
            await first_output(manager, f"one{k}", f"oneoff{k}{tag}")
        await manager.settle()
        late = []
        for k in range(min(runs, 10)):
            ready = await manager.prewarm(f"p17x{k}{tag}", "python", 1)
            late.append(await first_output(manager, f"late{k}", f"p17x{k}{tag}"))
            assert ready == 1, f"prewarm returned {ready}: {dict(pool_of(manager).counts)}"
        show("17th project after 16 one-off ones: prewarm, then a task", late)
        print(f"    pool decisions: {dict(pool_of(manager).counts)}")
    finally:
        await manager.shutdown()


async def main(args: argparse.Namespace) -> None:
    runs, seconds, levels, spares, only = args.runs, args.seconds, args.levels, args.spares, args.only
    tag = uuid.uuid4().hex[:6]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-{tag}")
    network = args.network or f"theappapp-bench-{tag}"
    config = RuntimeConfig.load(network_name=network, pool_max_spares=max(32, spares, *levels))
    manager = ContainerManager(config)
    cold = ContainerManager(RuntimeConfig.load(network_name=network, pool_enabled=False))
    await manager.startup()
    await cold.startup()
    # Raw containers get a twin network (same policy), so neither side's endpoint churn lands on the
    # other's network (Docker 20.10 can lose a network's endpoint count under concurrent churn).
    raw_network = args.raw_network or f"theappapp-bench-raw-{tag}"
    raw = Raw(manager, "python", raw_network)
    ensure_sandbox_network(raw.client, raw_network, install_firewall=config.network.install_firewall)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
    print(
        f"pool benchmark: python, engine {raw.client.version()['Version']}, {os.cpu_count()} cores, "
        f"{runs} latency runs per side, {seconds:.0f} s per throughput level"
    )
    sections: dict[str, Callable[[], Awaitable[None]]] = {
        "latency": lambda: latency(manager, cold, raw, runs, tag),
        "throughput": lambda: throughput(manager, raw, levels, seconds, args.rounds, tag),
        "idle": lambda: idle_cost(manager, raw, spares, tag),
        "workloads": lambda: workloads(network, raw, runs, tag),
    }
    try:
        for name, section in sections.items():
            if name in only:
                await section()
    finally:
        await manager.shutdown()
        await cold.shutdown()
        mine = {"label": [f"{labels.INSTALLATION}={config.installation_id}"]}
        for c in raw.api.containers(all=True, filters=mine):
            raw.api.remove_container(c["Id"], force=True)
        remove_volumes(raw.api, (v["Name"] for v in raw.api.volumes(filters=mine).get("Volumes") or []))
        for net in (network, raw_network):
            if net in (args.network, args.raw_network):
                continue  # given by the caller: kept
            remove_network(raw.client, net)
        raw.client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    # Long windows: each side's ramp-down (its last tasks finishing, about concurrency / rate seconds,
    # near 3 s at 16) is counted, and would otherwise weigh more than the sides differ.
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--spares", type=int, default=8)
    parser.add_argument("--only", nargs="+", default=["latency", "throughput", "idle", "workloads"])
    parser.add_argument("--network", help="an existing sandbox network to use and keep (default: a new one)")
    parser.add_argument("--raw-network", help="the same for the raw side")
    asyncio.run(main(parser.parse_args()))
