"""Project storage: what a disk quota costs a task, writes, and what snapshots cost. Prints figures; not a test.

    python benchmarks/bench_storage.py [--creates 15] [--rounds 3] [--idle-projects 200] [--cycles 40]
                                       [--turns 3] [--only creates throughput snapshots idle]

A storage root of this run's own (under /var/lib, removed at the end), the warm pool off on both sides:
1. Create -> first output of `true` -> destroy, for a project's first task (its volume is made) and
   for its later tasks: with quotas (each volume a filesystem of its own) against plain volumes
   (storage_enabled=false), interleaved, in the same run.
2. `dd` of 500 MB with fsync into /workspace: quota volume against a plain volume, alternating.
3. A ~100 MB workspace (2,000 small files and 90 MB in 3 large ones): snapshot and restore times,
   and how much the pool grows for the first snapshot, for a 1 MB change, and for a second snapshot.
4. Idle projects: `--idle-projects` project filesystems mounted (as after that many projects were
   served once), then the host's busy CPU per task cycle (create -> `true` -> destroy on another
   project, `--cycles` of them) with them mounted and after the idle sweep unmounted them, `--turns`
   times in turn (mounted again between: the time a returning project's filesystem takes to mount again).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench_floor import busy_ticks
from benchlib import pct, show

from runtime.backends.docker.storage import DockerStorage
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.naming import volume_name
from runtime.sandbox.spec import VolumeMount

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.storage_cleanup import remove_root  # the tests' own teardown

RUN = uuid.uuid4().hex[:6]
ROOT = Path(f"/var/lib/theappapp-bench-storage-{RUN}")
FILL = r"""
import os, random
random.seed(1)
os.makedirs("small", exist_ok=True)
for i in range(2000):
    open(f"small/f{i}", "wb").write(os.urandom(random.randint(1000, 8000)))
for i in range(3):
    open(f"large{i}", "wb").write(os.urandom(30 * 1024 * 1024))
"""


def manager(quota: bool) -> ContainerManager:
    return ContainerManager(RuntimeConfig.load(
        storage_enabled=quota, storage_root=str(ROOT), storage_pool_size="32g", pool_enabled=False,
        monitor_enabled=False, installation_id=f"bench-storage-{RUN}"))


async def cycle(mgr: ContainerManager, project: str) -> float:
    task = f"t{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    await mgr.create_container(task, project, "python")
    await mgr.exec_command(task, "true")
    took = time.perf_counter() - t0
    await mgr.destroy_container(task)
    await mgr.settle()
    return took


async def creates(quota: ContainerManager, plain: ContainerManager, n: int) -> list[str]:
    first: dict[bool, list[float]] = {True: [], False: []}
    later: dict[bool, list[float]] = {True: [], False: []}
    step: dict[bool, list[float]] = {True: [], False: []}  # the quota's own step: the volume's filesystem ready
    made: list[str] = []
    storage = quota.backend.storage
    devices = storage.devices  # type: ignore[attr-defined]  # the Docker storage's, which create calls
    now_first = [True]

    async def timed_devices(volumes: Any) -> Any:
        t0 = time.perf_counter()
        found = await devices(volumes)
        step[now_first[0]].append(time.perf_counter() - t0)
        return found

    storage.devices = timed_devices  # type: ignore[attr-defined]
    for i in range(n):
        for with_quota in ((True, False) if i % 2 else (False, True)):
            mgr = quota if with_quota else plain
            project = f"b{RUN}-{'q' if with_quota else 'p'}{i}"
            made.append(project)
            now_first[0] = True
            first[with_quota].append(await cycle(mgr, project))
            now_first[0] = False
            later[with_quota].append(await cycle(mgr, project))
    storage.devices = devices  # type: ignore[attr-defined]
    q1, _ = show("new project's first task, quota", first[True])
    p1, _ = show("new project's first task, plain volume", first[False])
    q2, _ = show("a project's later task, quota", later[True])
    p2, _ = show("a project's later task, plain volume", later[False])
    show("  of which the quota's own step, first task", step[True])
    show("  of which the quota's own step, later task", step[False])
    print(f"  -> a quota adds {q1 - p1:+.1f} ms to a new project's first task, {q2 - p2:+.1f} ms to later ones "
          "(p50 of whole cycles: the engine's spread is wider than either)")
    return made


async def throughput(quota: ContainerManager, plain: ContainerManager, rounds: int) -> None:
    speeds: dict[str, list[float]] = {"quota": [], "plain": []}
    for i in range(rounds):
        for kind, mgr in (("quota", quota), ("plain", plain)) if i % 2 else (("plain", plain), ("quota", quota)):
            project = f"b{RUN}-dd-{kind}"
            async with mgr.task(f"dd{uuid.uuid4().hex[:6]}", project, "python") as box:
                result = await box.exec("dd if=/dev/zero of=big bs=1M count=500 conv=fsync 2>&1; rm big", timeout=300)
            rate = re.search(r"([\d.]+) ([MG])B/s", result.stdout)
            assert rate, result.stdout
            speeds[kind].append(float(rate.group(1)) * (1000 if rate.group(2) == "G" else 1))
    for kind, values in speeds.items():
        print(f"  dd 500 MB with fsync, {kind:<5} volume  median {pct(values, 0.5):7.0f} MB/s   "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)})")


def pool_bytes() -> int:
    return (ROOT / "pool.img").stat().st_blocks * 512  # what the pool holds on the host's disk


async def snapshots(quota: ContainerManager) -> None:
    project = f"b{RUN}-snap"
    async with quota.task(f"s{RUN}", project, "python") as box:
        await box.write_files({"fill.py": FILL})
        assert (await box.exec("python3 fill.py && sync && du -sm /workspace", timeout=300)).exit_code == 0
        os.sync()
        before = pool_bytes()
        t0 = time.perf_counter()
        first = await quota.snapshot_project(project)
        snap1 = time.perf_counter() - t0
        os.sync()
        after_first = pool_bytes()
        await box.exec("head -c 1048576 /dev/urandom > changed && dd if=/dev/urandom of=large0 bs=1M count=1 "
                       "conv=notrunc 2>/dev/null; sync")
        os.sync()
        after_change = pool_bytes()
        t0 = time.perf_counter()
        await quota.snapshot_project(project)
        snap2 = time.perf_counter() - t0
        os.sync()
        after_second = pool_bytes()
    t0 = time.perf_counter()
    await quota.restore_project(project, first)
    restore = time.perf_counter() - t0
    t0 = time.perf_counter()
    await quota.fork_project(project, f"{project}-fork", first)
    fork = time.perf_counter() - t0
    used = (await quota.disk_usage(project)).used
    mib = 1024**2
    print(f"  workspace: {used / mib:.0f} MiB in use (the filesystem's own ~22 MiB included)")
    print(f"  snapshot {snap1 * 1000:.0f} ms, second snapshot {snap2 * 1000:.0f} ms, restore {restore * 1000:.0f} ms, "
          f"fork from a snapshot {fork * 1000:.0f} ms")
    grown = [(after_first - before) / mib, (after_change - after_first) / mib, (after_second - after_change) / mib]
    print(f"  pool on the host's disk: first snapshot +{grown[0]:.2f} MiB; the 2 MiB change +{grown[1]:.2f} MiB; "
          f"second snapshot +{grown[2]:.2f} MiB")
    await quota.delete_project_volume(f"{project}-fork")
    await quota.delete_project_volume(project)


PAUSE = 3.0  # seconds of quiet before each measured row


def host_mounts() -> int:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return sum(1 for _ in f)


async def busy_per_cycle(quota: ContainerManager, project: str, n: int) -> tuple[float, float]:
    """`n` cycles on `project`: (p50 wall, host busy CPU per cycle), in seconds."""
    await cycle(quota, project)  # its filesystem mounted again if the sweep took it: not counted
    await asyncio.sleep(PAUSE)  # the kernel's deferred work from the step before (unmounts, detaches) is done
    walls = []
    b0, hz = busy_ticks(), os.sysconf("SC_CLK_TCK")
    for _ in range(n):
        walls.append(await cycle(quota, project))
    return pct(walls, 0.5), (busy_ticks() - b0) / hz / n


async def idle_projects(quota: ContainerManager, n: int, cycles: int, turns: int) -> list[str]:
    storage = quota.backend.storage
    assert isinstance(storage, DockerStorage)
    projects = [f"b{RUN}-idle{i}" for i in range(n)]
    volumes = [VolumeMount(volume_name(p), "/workspace", quota=quota.config.storage.disk_quota_bytes) for p in projects]
    t0 = time.perf_counter()
    for v in volumes:
        await storage.ensure(v)
    print(f"  {n} project filesystems made and mounted in {time.perf_counter() - t0:.1f} s")
    active = f"b{RUN}-active"
    rows: list[tuple[str, float, float]] = []
    for turn in range(1, turns + 1):
        mounted = host_mounts()
        wall, cpu = await busy_per_cycle(quota, active, cycles)
        rows.append((f"{n} idle projects mounted ({mounted} host mounts)", wall, cpu))
        t0 = time.perf_counter()
        gone = await storage.unmount_idle(0)
        swept = time.perf_counter() - t0
        print(f"  turn {turn}: the sweep unmounted {len(gone)} filesystems in {swept:.2f} s "
              f"({swept * 1000 / max(1, len(gone)):.1f} ms each)")
        mounted = host_mounts()
        wall, cpu = await busy_per_cycle(quota, active, cycles)
        rows.append((f"after the sweep ({mounted} host mounts)", wall, cpu))
        again = []
        for v in volumes:
            t0 = time.perf_counter()
            await storage.ensure(v)
            again.append(time.perf_counter() - t0)
        show(f"turn {turn}: a returning project's filesystem mounted again", again, 56)
    for what, wall, cpu in rows:
        print(f"  {what:<44} cycle p50 {wall * 1000:6.1f} ms   host busy CPU {cpu * 1000:6.1f} ms per cycle")
    return [*projects, active]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-projects", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=["creates", "throughput", "snapshots", "idle"],
                        default=["creates", "throughput", "snapshots", "idle"])
    args = parser.parse_args()
    quota, plain = manager(True), manager(False)
    made: list[str] = []
    try:
        await quota.startup()
        await plain.startup()
        if quota.storage_status is None or not quota.storage_status.enforced:
            raise SystemExit(f"quotas cannot be enforced here: {quota.storage_status}")
        if "creates" in args.only:
            print(f"1. create -> first output -> destroy, pool off, {args.creates} projects each, interleaved")
            made = await creates(quota, plain, args.creates)
        if "throughput" in args.only:
            print("2. write throughput")
            await throughput(quota, plain, args.rounds)
        if "snapshots" in args.only:
            print("3. snapshots of a ~100 MB workspace")
            await snapshots(quota)
        if "idle" in args.only:
            print(f"4. idle projects: {args.idle_projects} mounted, {args.cycles} task cycles on another per row")
            made += await idle_projects(quota, args.idle_projects, args.cycles, args.turns)
    finally:
        for project in [*made, f"b{RUN}-dd-quota", f"b{RUN}-dd-plain"]:
            mgr = quota if "-q" in project or "-idle" in project or project.endswith(("quota", "-active")) else plain
            await mgr.delete_project_volume(project)
        await quota.shutdown()
        await plain.shutdown()
        remove_root(ROOT)


if __name__ == "__main__":
    asyncio.run(main())
