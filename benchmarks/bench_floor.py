"""Where the floor of back-to-back tasks is, and what it is made of. Prints figures; not a test.

    python benchmarks/bench_floor.py [--cycles 20] [--seconds 15] [--levels 1 2 4] [--tasks 60]
                                     [--depths 1 4] [--processes] [--mounts 500]
                                     [--only cycle rate pool] [--only mounts]
                                     [--only runtimes [--runtimes runc crun] [--rounds 3]]

Back-to-back tasks on one project (create -> first output -> destroy, the next at once) need, in
steady state, at least one container created, started and removed per task. A pool can overlap
that work with the tasks, but not do less of it: tasks/s cannot exceed R, the best rate at which
the engine creates, starts and removes the pool's containers, so the mean start -> first output
cannot drop below `1 / R - (the task's own time after its first output)`. This prints:

1. One cycle, raw docker-py with the hardened spec (create, start, exec `python3 -c 'print(1)'`,
   remove), sequential, on a sandbox network, with no network, and joined to the network
   namespace of a long-lived container on the sandbox network (`container:<id>`, as a
   Kubernetes pod's containers join its pause container; what the runtime's kept namespaces do,
   runtime/backends/docker/netns.py): wall time and the host's busy CPU per cycle (all cores,
   /proc/stat, steal excluded).
   With `--processes` (root, a local dockerd, an otherwise idle host): the processes that ended
   on the host during the cycles, from the kernel's process accounting. acct(2) is host-wide:
   the run takes it over and leaves it OFF, whatever it was before (a host that keeps process
   accounting must switch it on again). A process's CPU is counted in whole 10 ms ticks,
   rounded down per process, so short ones (iptables, runc's stages) read 0: the column is a
   lower bound. `exe` is a program run as /proc/self/exe: dockerd re-running itself
   (libnetwork's namespace helpers) or dockerd run by runc as the container's prestart hook.
2. Mounts (root; only with `--only ... mounts`): the joined cycle again, with `--mounts` more (tmpfs)
   mounts on the host, removed after (a run killed outright leaves them: `umount` them by hand).
   Every container's mount namespace starts as a copy of the host's, so each mount there (a
   project's quota filesystem is one) costs every container's start and removal a little.
3. R: create, start and remove of the pool's own container (the image's agent as main process,
   no exec: no more than a task needs of the engine, so 1 / R stays a lower bound) at each
   concurrency (`--levels`), `--seconds` each; on the sandbox network, and joined to a
   long-lived container's namespace (what the kept namespaces leave).
4. The pool, back-to-back on one project with `pool_max_per_key` (how many spares a key may have
   on their way) set to each of `--depths` (4 is the default; 1 makes them one at a time), with the
   kept network namespaces (the default) and without (`reuse_network_namespaces=False`):
   start -> first output, mean / p50 / p90; tasks/s from the third task to the end of the last
   removal; each task's own time (first output -> destroy returned); then the bound against the
   measured mean.
5. OCI runtimes (`--only runtimes`, each of `--runtimes` registered with the engine; crun by
   scripts/enable-crun.sh): for each, in turn, `--rounds` times: `--cycles` sequential cycles of
   the pool's container joined to a kept namespace (wall and host busy CPU per cycle), then
   `--tasks` back-to-back tasks through the pool with its defaults (start -> first output).
   Both sides of any comparison run under the runtime named, the raw cycle and the pool alike.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from bench_pool import Raw, remove_network
from benchlib import pct, remove_volumes

from runtime import labels
from runtime.backends.docker.calls import image_agent
from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.backends.docker.network import ensure_sandbox_network
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.spec import NO_NETWORK

PROGRAM = "python3 -c 'print(1)'"
AHZ = 100  # process accounting's ticks per second


class AcctRecord(NamedTuple):
    comm: str
    pid: int
    ppid: int
    cpu_ticks: int


# struct acct_v3 (linux/acct.h), in the host's byte order: flag, version, tty, exitcode, uid, gid,
# pid, ppid, btime, etime (float), utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t each),
# comm[16]: 64 bytes.
ACCT_V3 = struct.Struct("=BBHIIIIIIf8H16s")


def busy_ticks() -> int:
    """Ticks all cores spent working (user, nice, system, irq, softirq; not idle, iowait or steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return user + nice + system + irq + softirq


def comp_t(value: int) -> int:
    """A comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def acct_records(path: Path) -> Iterator[AcctRecord]:
    """Every process that ended while accounting was on."""
    data = path.read_bytes()
    for off in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        _flag, version, _tty, _exit, _uid, _gid, pid, ppid, _btime, _etime, utime, stime, *_rest, comm = (
            ACCT_V3.unpack_from(data, off))
        if version & 0x7F != 3:  # the top bit marks the writer's byte order
            raise RuntimeError(f"process accounting record version {version & 0x7F}, expected 3")
        yield AcctRecord(comm.split(b"\0", 1)[0].decode(errors="replace"), pid, ppid, comp_t(utime) + comp_t(stime))


class ProcessAccounting:
    """The kernel's process accounting into a file of ours, for the length of a `with` block."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.path = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "pacct"

    def __enter__(self) -> ProcessAccounting:
        self.path.touch(mode=0o600)
        if self.libc.acct(str(self.path).encode()) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"acct(2): {os.strerror(errno)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.libc.acct(None)

    def by_process(self, dockerd: int) -> tuple[Counter[str], Counter[str]]:
        """(how many, CPU ticks) per command, dockerd's runs of its own binary named by who ran them."""
        records = list(acct_records(self.path))
        command_of = {r.pid: r.comm for r in records}
        count: Counter[str] = Counter()
        cpu_ticks: Counter[str] = Counter()
        for r in records:
            comm = r.comm
            if comm == "exe":
                if r.ppid == dockerd:
                    comm = "dockerd re-exec"
                elif command_of.get(r.ppid) == "runc":
                    comm = "dockerd as runc hook"
                else:
                    comm = "exe, other parent"
            count[comm] += 1
            cpu_ticks[comm] += r.cpu_ticks
        return count, cpu_ticks

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.parent.rmdir()


def dockerd_pid() -> int | None:
    """The local engine's pid, from its pid file."""
    try:
        return int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def cycles(raw: Raw, project: str, n: int, tag: str) -> tuple[float, float]:
    """`n` sequential raw cycles: (wall seconds, host busy CPU seconds) per cycle."""
    t0, b0 = time.perf_counter(), busy_ticks()
    for i in range(n):
        cid = raw.create_started(project, f"c{tag}x{i}")
        out = raw.exec(cid, PROGRAM)
        assert out == b"1\n", out
        raw.remove(cid)
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return (time.perf_counter() - t0) / n, (busy_ticks() - b0) / ticks_per_s / n


def counted_cycles(raw: Raw, project: str, n: int, tag: str, dockerd: int
                   ) -> tuple[float, float, tuple[Counter[str], Counter[str]] | str]:
    """`cycles` under process accounting: its figures, and the processes or why they were not counted."""
    acct = ProcessAccounting()
    try:
        try:
            with acct:
                wall, busy = cycles(raw, project, n, tag)
        except OSError as err:  # no CAP_SYS_PACCT (rootless, a user namespace) or no kernel support
            wall, busy = cycles(raw, project, n, tag)
            return wall, busy, str(err)
        try:
            return wall, busy, acct.by_process(dockerd)
        except RuntimeError as err:
            return wall, busy, str(err)
    finally:
        acct.remove()


def cycle_section(raws: dict[str, Raw], project: str, n: int, tag: str, processes: bool) -> None:
    print(f"one cycle (raw create, start, exec {PROGRAM}, remove), {n} sequential, {os.cpu_count()} cores")
    dockerd = dockerd_pid()
    if processes and (os.geteuid() != 0 or dockerd is None):
        print("  (--processes needs root and a local dockerd: not counted)")
        processes = False
    if processes:
        assert dockerd is not None
        size = Path(f"/proc/{dockerd}/exe").stat().st_size
        print(f"  process accounting: on for each network's cycles, then left off; "
              f"dockerd's binary {size / 2**20:.0f} MiB")
    for name, raw in raws.items():
        cycles(raw, project, 2, f"{name}warm{tag}")  # the first cycles on a network pay its setup
        if not processes:
            wall, busy = cycles(raw, project, n, f"{name}{tag}")
            print(f"  network {name:<8} {wall * 1000:6.1f} ms per cycle, host busy CPU {busy * 1000:6.1f} ms per cycle")
            continue
        assert dockerd is not None
        wall, busy, counted = counted_cycles(raw, project, n, f"{name}{tag}", dockerd)
        print(f"  network {name:<8} {wall * 1000:6.1f} ms per cycle, host busy CPU {busy * 1000:6.1f} ms per cycle")
        if isinstance(counted, str):
            print(f"      processes not counted: {counted}")
            continue
        count, cpu_ticks = counted
        print("      processes that ended on the host during the cycles, per cycle (CPU: a lower bound)")
        for comm in sorted(count, key=lambda c: (-cpu_ticks[c], -count[c])):
            cpu_ms = cpu_ticks[comm] * 1000 / AHZ / n
            if count[comm] / n >= 0.5 or cpu_ms:
                print(f"      {comm:<22} {count[comm] / n:5.1f}   {cpu_ms:6.1f} ms CPU")
        engine = sum(cpu_ticks[c] for c in ("dockerd re-exec", "dockerd as runc hook")) * 1000 / AHZ / n
        print(f"      dockerd's binary run again: {engine:.1f} ms CPU, "
              f"{engine / (busy * 1000):.0%} of the host's busy CPU")


def host_mounts() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


def mounts_section(raw: Raw, project: str, n: int, extra: int, tag: str) -> None:
    """The joined cycle with the host's mounts as they are, then with `extra` more (small tmpfs mounts of
    our own, removed after): a container's mount namespace starts as a copy of the host's, so every
    mount on the host (a quota volume's filesystem is one) is copied and torn down with each container."""
    if os.geteuid() != 0:
        print("mounts: needs root (mount(8)): not measured")
        return
    print(f"mounts: joined cycle ({n} sequential) against the number of mounts on the host")
    base = Path(tempfile.mkdtemp(prefix="bench-floor-mounts-"))
    made: list[Path] = []
    try:
        cycles(raw, project, 2, f"mwarm{tag}")
        before = host_mounts()
        wall0, busy0 = cycles(raw, project, n, f"m0{tag}")
        for i in range(extra):
            target = base / str(i)
            target.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "bench", str(target)], check=True)
            made.append(target)
        wall1, busy1 = cycles(raw, project, n, f"m1{tag}")
        after = host_mounts()
        for count, wall, busy in ((before, wall0, busy0), (after, wall1, busy1)):
            print(f"  {count:5d} mounts: {wall * 1000:6.1f} ms per cycle, "
                  f"host busy CPU {busy * 1000:6.1f} ms per cycle")
        print(f"  per mount on the host, per container: {(busy1 - busy0) * 1000 / (after - before):.3f} ms of "
              f"host CPU, {(wall1 - wall0) * 1000 / (after - before):.3f} ms of wall time")
    finally:
        for target in reversed(made):
            subprocess.run(["umount", str(target)], check=False)
        shutil.rmtree(base, ignore_errors=True)


class AgentCycle:
    """Create, start and remove of the container the pool makes (the agent as main process), nothing more."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        agent = image_agent(raw.api, raw.lang.image)
        if agent is None:
            raise SystemExit(f"{raw.lang.image} has no sandbox agent: rebuild it (nox -s build -- python)")
        self.agent = agent

    def run(self, project: str, task: str) -> None:
        spec = self.raw.spec(project, task)
        built = self.raw.api.create_host_config(**host_config(spec, self.agent))
        cid = str(self.raw.api.create_container(**create_kwargs(spec, built, self.agent))["Id"])
        self.raw.api.start(cid)
        self.raw.remove(cid)


def agent_cycles(cycle: AgentCycle, projects: list[str], seconds: float, tag: str) -> float:
    """A thread per project, each a loop of `cycle` for `seconds`: cycles per second."""
    done = [0] * len(projects)
    failed: list[BaseException] = []
    stop = time.perf_counter() + seconds

    def worker(w: int) -> None:
        i = 0
        try:
            while time.perf_counter() < stop:
                cycle.run(projects[w], f"a{tag}x{w}x{i}")
                i += 1
        except BaseException as err:  # a rate from dead workers would be too low, not a figure
            failed.append(err)
        done[w] = i

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(len(projects))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise RuntimeError(f"a cycle failed: {failed[0]!r}") from failed[0]
    return sum(done) / (time.perf_counter() - t0)


def rate_section(raws: dict[str, Raw], projects: list[str], levels: list[int], seconds: float, tag: str
                 ) -> dict[str, float]:
    """R per network: the best rate over the concurrency levels."""
    print(f"R: create, start, remove of the pool's container (agent, no exec), {seconds:.0f} s per concurrency")
    best: dict[str, float] = {}
    for name in ("sandbox", "joined"):
        cycle = AgentCycle(raws[name])
        for n in levels:
            rate = agent_cycles(cycle, projects[:n], seconds, f"{name}{n}{tag}")
            best[name] = max(best.get(name, 0.0), rate)
            print(f"  network {name:<8} concurrency {n:>2}: {rate:5.2f} cycles/s")
    return best


class BackToBack(NamedTuple):
    firsts: list[float]  # start -> first output, seconds
    own: list[float]  # first output -> destroy returned
    rate: float  # tasks/s, from the third task to the last removal's end


async def back_to_back(network: str, project: str, depth: int, tasks: int, kept: bool,
                       runtime: str | None = None) -> BackToBack:
    """`tasks` tasks on one project, each created when the one before was destroyed."""
    manager = ContainerManager(RuntimeConfig.load(network_name=network, pool_max_per_key=depth,
                                                  reuse_network_namespaces=kept, runtime=runtime))
    await manager.startup()
    firsts: list[float] = []
    own: list[float] = []
    try:
        t_counted = 0.0
        for i in range(tasks):
            t0 = time.perf_counter()
            if i == 2:  # the first two: before the key showed any demand
                t_counted = t0
            await manager.create_container(f"b{depth}x{i}", project, "python")
            first = 0.0
            async for _chunk in manager.exec_stream(f"b{depth}x{i}", PROGRAM):
                first = first or time.perf_counter()
            await manager.destroy_container(f"b{depth}x{i}")
            firsts.append(first - t0)
            own.append(time.perf_counter() - first)
        await manager.settle()  # the last removals are work these tasks caused
        rate = (tasks - 2) / (time.perf_counter() - t_counted)
    finally:
        await manager.shutdown()
    return BackToBack(firsts[2:], own[2:], rate)


def pool_section(network: str, project: str, depths: list[int], tasks: int, best: dict[str, float]) -> None:
    print(f"the pool, back-to-back on one project: start -> first output of {PROGRAM}")
    for depth in depths:
        for kept in (True, False):
            run = asyncio.run(back_to_back(network, f"{project}{depth}{int(kept)}", depth, tasks, kept))
            mean_first, mean_own = statistics.mean(run.firsts), statistics.mean(run.own)
            print(f"  pool_max_per_key {depth}, {'kept namespaces' if kept else 'own namespaces '}: mean "
                  f"{mean_first * 1000:6.1f} ms   p50 {pct(run.firsts, 0.5) * 1000:6.1f}   p90 "
                  f"{pct(run.firsts, 0.9) * 1000:6.1f}   {run.rate:4.2f} tasks/s   task's own time "
                  f"{mean_own * 1000:5.1f} ms   (n={len(run.firsts)})")
            best_rate = best.get("joined" if kept else "sandbox")
            if best_rate is None:  # R not measured in this run (--only)
                continue
            print(f"      bound: 1 / {best_rate:.2f} cycles/s - {mean_own * 1000:.1f} ms = "
                  f"{(1 / best_rate - mean_own) * 1000:6.1f} ms mean, with the best R measured "
                  f"({'joined' if kept else 'sandbox network'})")


def runtimes_section(base: Raw, holder: str, project: str, args: argparse.Namespace) -> None:
    """Section 5: the same cycle and the same back-to-back tasks under each OCI runtime, alternating."""
    network = base.network
    registered = set(base.client.info().get("Runtimes") or {})
    names = [r for r in args.runtimes if r in registered]
    missing = ", ".join(sorted(set(args.runtimes) - registered)) or "none"
    print(f"OCI runtimes ({', '.join(names)}; not registered: {missing}), {args.rounds} rounds, in turn")
    cycle_cpu: dict[str, list[float]] = {r: [] for r in names}
    p50s: dict[str, list[float]] = {r: [] for r in names}
    for round_ in range(args.rounds):
        for name in names:
            manager = ContainerManager(RuntimeConfig.load(network_name=network, pool_enabled=False, runtime=name))
            raw = Raw(manager, "python", f"container:{holder}")
            cycle = AgentCycle(raw)
            t0, b0 = time.perf_counter(), busy_ticks()
            for i in range(args.cycles):
                cycle.run(project, f"rt{name}{round_}x{i}")
            wall = (time.perf_counter() - t0) / args.cycles
            cpu = (busy_ticks() - b0) / os.sysconf("SC_CLK_TCK") / args.cycles
            raw.client.close()
            run = asyncio.run(back_to_back(network, f"{project}{name}{round_}", 4, args.tasks, True, name))
            cycle_cpu[name].append(cpu)
            p50s[name].append(pct(run.firsts, 0.5))
            print(f"  round {round_ + 1} {name:<5} cycle (joined): wall {wall * 1000:6.1f} ms, host CPU "
                  f"{cpu * 1000:6.1f} ms   back-to-back: p50 {p50s[name][-1] * 1000:6.1f} ms   mean "
                  f"{statistics.mean(run.firsts) * 1000:6.1f}   p90 {pct(run.firsts, 0.9) * 1000:6.1f}   "
                  f"{run.rate:4.2f} tasks/s", flush=True)
    for name in names:
        print(f"  {name:<5} median of rounds: cycle host CPU {statistics.median(cycle_cpu[name]) * 1000:6.1f} ms, "
              f"back-to-back p50 {statistics.median(p50s[name]) * 1000:6.1f} ms")


def cleanup(raw: Raw, installation: str, network: str) -> None:
    """This run's containers, volumes and network; every step runs whatever the others did."""
    mine = {"label": [f"{labels.INSTALLATION}={installation}"]}
    try:
        for c in raw.api.containers(all=True, filters=mine):
            raw.api.remove_container(c["Id"], force=True)
    finally:
        try:
            remove_volumes(raw.api, (v["Name"] for v in raw.api.volumes(filters=mine).get("Volumes") or []))
        finally:
            remove_network(raw.client, network)


def main(args: argparse.Namespace) -> None:
    # SIGTERM unwinds like Ctrl-C: process accounting goes off, what was made is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tag = uuid.uuid4().hex[:6]
    # An installation of its own, whatever the environment says: the cleanup removes all of it.
    installation = f"bench-floor-{tag}"
    os.environ["THEAPPAPP_INSTALLATION_ID"] = installation
    config = RuntimeConfig.load()
    network = f"theappapp-bench-floor-{tag}"
    manager = ContainerManager(RuntimeConfig.load(network_name=network, pool_enabled=False))
    raws = {"sandbox": Raw(manager, "python", network), "none": Raw(manager, "python", NO_NETWORK)}
    raw = raws["sandbox"]
    projects = [f"floor{k}{tag}" for k in range(max(args.levels))]
    try:
        ensure_sandbox_network(raw.client, network, install_firewall=config.network.install_firewall)
        for p in projects:
            raw.volume(p)
        holder = raw.create_started(projects[0], f"holder{tag}")
        raws["joined"] = Raw(manager, "python", f"container:{holder}")
        print(f"floor benchmark: python, engine {raw.client.version()['Version']}")
        if "cycle" in args.only:
            cycle_section(raws, projects[0], args.cycles, tag, args.processes)
        if "mounts" in args.only:
            mounts_section(raws["joined"], projects[0], args.cycles, args.mounts, tag)
        best = rate_section(raws, projects, args.levels, args.seconds, tag) if "rate" in args.only else {}
        if "pool" in args.only:
            pool_section(network, projects[0], args.depths, args.tasks, best)
        if "runtimes" in args.only:
            runtimes_section(raw, holder, projects[0], args)
    finally:
        try:
            cleanup(raw, installation, network)
        finally:
            for r in raws.values():
                r.client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=60, help="per depth; the first two are not counted")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--only", nargs="+", choices=["cycle", "mounts", "rate", "pool", "runtimes"],
                        default=["cycle", "rate", "pool"], help="sections to run (mounts and runtimes only when named)")
    parser.add_argument("--runtimes", nargs="+", default=["runc", "crun"], help="OCI runtimes to compare")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the runtimes section")
    parser.add_argument("--mounts", type=int, default=500, help="mounts added to the host for the mounts section")
    parser.add_argument("--processes", action="store_true",
                        help="count the processes each cycle starts (root; takes over host-wide process "
                        "accounting and leaves it off)")
    parsed = parser.parse_args()
    if (parsed.tasks < 4 or parsed.cycles < 1 or min(parsed.levels) < 1 or min(parsed.depths) < 1 or parsed.mounts < 1
            or parsed.rounds < 1):
        parser.error("--tasks must be at least 4, --cycles, --levels, --depths, --mounts and --rounds at least 1")
    main(parsed)
