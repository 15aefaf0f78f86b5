"""Where the floor of back-to-back tasks is, and what it is made of. Prints figures; not a test.

    python benchmarks/bench_floor.py [--cycles 20] [--seconds 15] [--levels 1 2 4] [--tasks 60] [--depths 1 3]

Back-to-back tasks on one project (create -> first output -> destroy, the next at once) need, in
steady state, one container created, started and removed per task. A pool can overlap that work
with the tasks, but not do less of it, so the mean wait for a spare cannot drop below
`1 / (the engine's best rate) - (the task's own time)`. This prints the three numbers it takes:

1. One cycle, raw docker-py with the hardened spec (create, start, exec `python3 -c 'print(1)'`,
   remove), sequential, on a sandbox network, with no network, and joined to the network
   namespace of a long-lived container on the sandbox network (`container:<id>`, as a
   Kubernetes pod's containers join its pause container; the runtime does not do this, see the
   README): wall time and busy CPU per cycle (all cores, /proc/stat). As root, the processes
   each cycle starts, from the kernel's process accounting (acct(2), switched on for the run and
   off after): how many and their CPU.
   A process's CPU is counted in whole 10 ms ticks, rounded down per process, so short ones
   (iptables, runc's stages) read 0: the column is a lower bound. `exe` is the engine's own
   binary run again (/proc/self/exe): by dockerd itself (libnetwork's namespace helpers) or by
   runc as the container's prestart hook (libnetwork-setkey).
2. The engine's best rate: raw cycles at each concurrency (`--levels`), `--seconds` each, on the
   sandbox network and joined to a long-lived container's namespace (the bound that sharing a
   namespace per project would leave).
3. The pool, back-to-back on one project with `pool_spares_per_key` set to each of `--depths`
   (1 is the default): start -> first output, mean / p50 / p90, tasks/s, and each task's own
   time (first output -> destroy returned); then the bound above against the measured mean.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import statistics
import struct
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench_pool import Raw, raw_level
from benchlib import pct

from runtime import labels
from runtime.backends.docker.network import ensure_sandbox_network, remove_sandbox_network
from runtime.config import RuntimeConfig
from runtime.errors import NetworkPolicyError
from runtime.sandbox.manager import ContainerManager

PROGRAM = "python3 -c 'print(1)'"
# struct acct_v3 (linux/acct.h): flag, version, tty, exitcode, uid, gid, pid, ppid, btime, etime
# (float), utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t each), comm[16]: 64 bytes.
ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")
AHZ = 100  # accounting ticks per second


def busy_ticks() -> int:
    """Ticks all cores spent not idle (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def comp_t(value: int) -> int:
    """A comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def acct_records(path: Path) -> Iterator[tuple[str, int, int]]:
    """(command, parent pid, CPU ticks) of every process that ended while accounting was on."""
    data = path.read_bytes()
    for off in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        rec = ACCT_V3.unpack_from(data, off)
        if rec[1] != 3:  # not a v3 record: the file is not what this parser knows
            raise RuntimeError(f"process accounting record version {rec[1]}, expected 3")
        comm = rec[18].split(b"\0", 1)[0].decode(errors="replace")
        yield comm, rec[7], comp_t(rec[10]) + comp_t(rec[11])


class ProcessAccounting:
    """The kernel's process accounting into a file of ours, for the length of a `with` block."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.path = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "pacct"

    def __enter__(self) -> ProcessAccounting:
        self.path.touch(mode=0o600)
        if self.libc.acct(str(self.path).encode()) != 0:
            raise OSError(ctypes.get_errno(), "acct(2) refused")
        return self

    def __exit__(self, *exc: object) -> None:
        self.libc.acct(None)

    def by_process(self, dockerd_pid: int) -> Counter[tuple[str, str]]:
        """(name, "n" | "ticks") -> total, with the engine's re-executions named by who ran them."""
        totals: Counter[tuple[str, str]] = Counter()
        for comm, ppid, ticks in acct_records(self.path):
            if comm == "exe":
                comm = "dockerd re-exec" if ppid == dockerd_pid else "dockerd as runc hook"
            totals[(comm, "n")] += 1
            totals[(comm, "ticks")] += ticks
        return totals

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.parent.rmdir()


def dockerd_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    return int(entry.name)
            except OSError:
                continue
    return None


def cycles(raw: Raw, project: str, n: int, tag: str) -> tuple[float, float]:
    """`n` sequential raw cycles: (wall seconds, busy CPU seconds) per cycle."""
    t0, b0 = time.perf_counter(), busy_ticks()
    for i in range(n):
        cid = raw.create_started(project, f"c{tag}x{i}")
        out = raw.exec(cid, PROGRAM)
        assert out == b"1\n", out
        raw.remove(cid)
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return (time.perf_counter() - t0) / n, (busy_ticks() - b0) / ticks_per_s / n


def cycle_section(raws: dict[str, Raw], project: str, n: int, tag: str) -> None:
    print(f"one cycle (raw create, start, exec {PROGRAM}, remove), {n} sequential, {os.cpu_count()} cores")
    pid = dockerd_pid()
    accounting = os.geteuid() == 0 and pid is not None
    if not accounting:
        print("  (the processes each cycle starts need root and a local dockerd: not counted)")
    for name, raw in raws.items():
        cycles(raw, project, 2, f"{name}warm{tag}")  # the first cycles on a network pay its setup
        if not accounting:
            wall, busy = cycles(raw, project, n, f"{name}{tag}")
            print(f"  network {name:<8} {wall * 1000:6.1f} ms per cycle, busy CPU {busy * 1000:6.1f} ms per cycle")
            continue
        acct = ProcessAccounting()
        try:
            with acct:
                wall, busy = cycles(raw, project, n, f"{name}{tag}")
            assert pid is not None
            totals = acct.by_process(pid)
        finally:
            acct.remove()
        print(f"  network {name:<8} {wall * 1000:6.1f} ms per cycle, busy CPU {busy * 1000:6.1f} ms per cycle; "
              "processes started per cycle (CPU, lower bound):")
        names = sorted({c for c, _ in totals}, key=lambda c: -totals[(c, "ticks")])
        for comm in names:
            count, ticks = totals[(comm, "n")] / n, totals[(comm, "ticks")] * 1000 / AHZ / n
            if count >= 0.5 or ticks:
                print(f"      {comm:<22} {count:5.1f} per cycle   {ticks:6.1f} ms CPU per cycle")


def rate_section(raws: dict[str, Raw], projects: list[str], levels: list[int], seconds: float, tag: str
                 ) -> dict[str, float]:
    """The best rate of each network's cycles over the concurrency levels."""
    print(f"the engine's rate: raw create, start, exec `true`, remove, {seconds:.0f} s per concurrency")
    best: dict[str, float] = {}
    for name in ("sandbox", "joined"):
        for n in levels:
            rate = raw_level(raws[name], projects[:n], seconds, f"{name}{n}{tag}")
            best[name] = max(best.get(name, 0.0), rate)
            print(f"  network {name:<8} concurrency {n:>2}: {rate:5.2f} cycles/s")
    return best


async def back_to_back(network: str, project: str, depth: int, tasks: int) -> tuple[list[float], list[float], float]:
    """(start -> first output, the task's own time after it, tasks/s) for `tasks` tasks on one project."""
    manager = ContainerManager(RuntimeConfig.load(network_name=network, pool_spares_per_key=depth))
    await manager.startup()
    waits: list[float] = []
    own: list[float] = []
    try:
        t_start = time.perf_counter()
        for i in range(tasks):
            t0 = time.perf_counter()
            await manager.create_container(f"b{depth}x{i}", project, "python")
            first = 0.0
            async for _chunk in manager.exec_stream(f"b{depth}x{i}", PROGRAM):
                first = first or time.perf_counter()
            await manager.destroy_container(f"b{depth}x{i}")
            waits.append(first - t0)
            own.append(time.perf_counter() - first)
        rate = tasks / (time.perf_counter() - t_start)
        await manager.settle()
    finally:
        await manager.shutdown()
    # The first two: before the key showed any demand.
    return waits[2:], own[2:], rate


def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:6]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-floor-{tag}")
    config = RuntimeConfig.load()
    network = f"theappapp-bench-floor-{tag}"
    manager = ContainerManager(RuntimeConfig.load(network_name=network, pool_enabled=False))
    raws = {"sandbox": Raw(manager, "python", network), "none": Raw(manager, "python", "none")}
    raw = raws["sandbox"]
    ensure_sandbox_network(raw.client, network, install_firewall=config.network.install_firewall)
    projects = [f"floor{k}{tag}" for k in range(max(args.levels))]
    try:
        for p in projects:
            raw.volume(p)
        holder = raw.create_started(projects[0], f"holder{tag}")
        raws["joined"] = Raw(manager, "python", f"container:{holder}")
        print(f"floor benchmark: python, engine {raw.client.version()['Version']}")
        if "cycle" in args.only:
            cycle_section(raws, projects[0], args.cycles, tag)
        best = rate_section(raws, projects, args.levels, args.seconds, tag) if "rate" in args.only else {}
        if "pool" in args.only:
            print(f"the pool, back-to-back on one project: start -> first output of {PROGRAM}")
            for depth in args.depths:
                waits, own, rate = asyncio.run(back_to_back(network, projects[0], depth, args.tasks))
                mean_wait, mean_own = statistics.mean(waits), statistics.mean(own)
                print(f"  spares per key {depth}: mean {mean_wait * 1000:6.1f} ms   p50 {pct(waits, 0.5) * 1000:6.1f}"
                      f"   p90 {pct(waits, 0.9) * 1000:6.1f}   {rate:4.2f} tasks/s   task's own time "
                      f"{mean_own * 1000:5.1f} ms   (n={len(waits)})")
                for name, rate_ in best.items():
                    print(f"      bound ({name}): 1 / {rate_:.2f} cycles/s - {mean_own * 1000:.1f} ms = "
                          f"{(1 / rate_ - mean_own) * 1000:6.1f} ms mean wait at best")
    finally:
        mine = {"label": [f"{labels.INSTALLATION}={manager.config.installation_id}"]}
        for c in raw.api.containers(all=True, filters=mine):
            raw.api.remove_container(c["Id"], force=True)
        for v in raw.api.volumes(filters=mine).get("Volumes") or []:
            raw.api.remove_volume(v["Name"], force=True)
        for attempt in range(6):  # the engine releases endpoints a moment after the last removal
            try:
                remove_sandbox_network(raw.client, network)
                break
            except NetworkPolicyError as err:
                if attempt == 5:
                    print(f"note: {err}")
                time.sleep(0.5)
        for r in raws.values():
            r.client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--only", nargs="+", default=["cycle", "rate", "pool"])
    main(parser.parse_args())
