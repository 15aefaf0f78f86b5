"""Issue 13, item 5: a spare bound to no project, its /workspace attached at hand-over. An experiment, not a test.

    python benchmarks/bench_projectless_spare.py [--runs 30]

Needs root and a local engine (it mounts on the engine's host). The mechanism tried: each spare gets a
host directory of its own under /run, made a shared mount point, bound into the container at
/workspace with `rslave` propagation. At hand-over the manager binds the project's volume onto that
directory on the host; the bind propagates into the running container, which then sees the project at
/workspace. The container, with no capabilities, cannot mount, unmount or propagate anything back.

Prints, from one run:
1. The attacks tried (each line PASS or FAIL): a spare sees nothing before hand-over; after it, each
   task sees its own project and no trace of another's (a search of the whole filesystem for the
   other project's marker); a task cannot unmount or cover its /workspace; once a task ends and its
   directory is detached, a new spare on a fresh directory sees nothing of it; the project's files
   stay on its volume.
2. What the attach costs: the host bind (mount(2)) p50, and start -> first output (`docker exec echo`)
   for a project-keyed spare against a project-less spare attached at hand-over, alternating, and
   a cold create+start+exec for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import shutil
import time
import uuid
from pathlib import Path

import docker
from bench_pool import Raw
from benchlib import show
from docker.types import Mount

from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED, MNT_DETACH = 4096, 16384, 1 << 18, 1 << 20, 2
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
ROOT = Path("/run/theappapp-sandbox/bench-spares")


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    if LIBC.mount(src, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if LIBC.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


class Projectless:
    """Spares with a shared host directory at /workspace, attached to a project's volume at hand-over."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.dirs: dict[str, Path] = {}

    def make(self) -> str:
        name = "s" + uuid.uuid4().hex[:10]
        spot = ROOT / name
        spot.mkdir(parents=True)
        _mount(str(spot), str(spot), MS_BIND)  # a mount point of its own ...
        _mount(None, str(spot), MS_PRIVATE)
        _mount(None, str(spot), MS_SHARED)  # ... in a peer group of its own: what lands on it reaches this spare only
        spec = self.raw.spec("unbound", name)
        kwargs = host_config(spec)
        kwargs["mounts"] = [Mount(spec.workspace.target, str(spot), type="bind", propagation="rslave")]
        built = self.raw.api.create_host_config(**kwargs)
        cid = str(self.raw.api.create_container(**create_kwargs(spec, built))["Id"])
        self.raw.api.start(cid)
        self.dirs[cid] = spot
        return cid

    def attach(self, cid: str, volume_path: str) -> float:
        t0 = time.perf_counter()
        spot = str(self.dirs[cid])
        _mount(volume_path, spot, MS_BIND)  # propagates into the spare, now
        # The bind would otherwise join the peer group of the filesystem the volume lives on (the host's
        # root here): private, nothing mounted under the volume elsewhere reaches the task, nor the reverse.
        _mount(None, spot, MS_PRIVATE)
        return time.perf_counter() - t0

    def remove(self, cid: str) -> None:
        self.raw.remove(cid)
        spot = self.dirs.pop(cid)
        while mounts_at(spot):  # the project's bind, then the directory's own
            _umount(str(spot))
        spot.rmdir()


def mounts_at(path: Path) -> int:
    """How many mounts are stacked at `path` (a bind from the same filesystem is no `os.path.ismount`)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        return sum(1 for line in table if line.split()[4] == str(path))


def volume_path(api: docker.APIClient, project: str) -> str:
    return str(api.inspect_volume(f"theappapp-project-{project}")["Mountpoint"])


def run(raw: Raw, cid: str, command: str) -> tuple[int, str]:
    ex = raw.api.exec_create(cid, ["/bin/bash", "-c", command], user="1000", workdir="/workspace")
    out = raw.api.exec_start(ex["Id"]).decode(errors="replace")
    return int(raw.api.exec_inspect(ex["Id"])["ExitCode"]), out


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail and not ok else ''}")
    return ok


def attacks(raw: Raw, spares: Projectless, projects: dict[str, str]) -> bool:
    """Two spares, two projects; every way a task might see the other's files."""
    (p1, m1), (p2, m2) = projects.items()
    s1, s2 = spares.make(), spares.make()
    ok = check("a spare sees an empty /workspace before hand-over",
               run(raw, s1, "ls -A /workspace | wc -l")[1].strip() == "0")
    spares.attach(s1, volume_path(raw.api, p1))
    spares.attach(s2, volume_path(raw.api, p2))
    ok &= check("after hand-over each task sees its own project",
                m1 in run(raw, s1, "cat /workspace/marker")[1] and m2 in run(raw, s2, "cat /workspace/marker")[1])
    search = "grep -rls --exclude-dir=proc --exclude-dir=sys {} / 2>/dev/null; true"
    for me, other, marker, own in ((s1, p2, m2, m1), (s2, p1, m1, m2)):
        # The same search finds the task's own marker: a search that could not find anything proves nothing.
        ok &= check("the search finds the task's own project", run(raw, me, search.format(own))[1].strip()
                    == "/workspace/marker")
        code, out = run(raw, me, search.format(marker))
        ok &= check(f"a task finds no file of project {other} anywhere in its filesystem", not out.strip(),
                    out.strip())
        code, out = run(raw, me, "cat /proc/self/mountinfo | grep -c workspace")
        ok &= check("its mount table names only its own /workspace", out.strip() in ("1", "2"), out)
    code, out = run(raw, s1, "umount /workspace 2>&1; mount -t tmpfs none /workspace 2>&1; cat /workspace/marker")
    ok &= check("a task cannot unmount or cover its /workspace", m1 in out, out)
    code, out = run(raw, s1, "echo written-by-task > /workspace/from-task && cat /workspace/from-task")
    ok &= check("the task writes to its project", code == 0 and "written-by-task" in out, out)
    spares.remove(s1)
    ok &= check("the file is on project 1's volume after the task", (Path(volume_path(raw.api, p1)) / "from-task")
                .read_text().strip() == "written-by-task")
    s3 = spares.make()
    code, out = run(raw, s3, f"ls -A /workspace; grep -rls --exclude-dir=proc --exclude-dir=sys {m1} / 2>/dev/null;:")
    ok &= check("a later spare sees nothing of project 1", not out.strip(), out)
    spares.remove(s2)
    spares.remove(s3)
    return ok


async def timing(raw: Raw, spares: Projectless, project: str, runs: int) -> None:
    loop = asyncio.get_running_loop()
    keyed, unbound, attach, cold = [], [], [], []
    path = volume_path(raw.api, project)

    def keyed_once() -> float:
        cid = raw.create_started(project, "k" + uuid.uuid4().hex[:8])
        time.sleep(0.3)  # the spare sits ready, as in the pool
        t0 = time.perf_counter()
        run(raw, cid, "echo hi")
        took = time.perf_counter() - t0
        raw.remove(cid)
        return took

    def unbound_once() -> tuple[float, float]:
        cid = spares.make()
        time.sleep(0.3)
        t0 = time.perf_counter()
        bind = spares.attach(cid, path)
        run(raw, cid, "echo hi")
        took = time.perf_counter() - t0
        spares.remove(cid)
        return took, bind

    def cold_once() -> float:
        t0 = time.perf_counter()
        cid = raw.create_started(project, "c" + uuid.uuid4().hex[:8])
        run(raw, cid, "echo hi")
        took = time.perf_counter() - t0
        raw.remove(cid)
        return took

    for _ in range(runs):
        keyed.append(await loop.run_in_executor(None, keyed_once))
        took, bind = await loop.run_in_executor(None, unbound_once)
        unbound.append(took)
        attach.append(bind)
        cold.append(await loop.run_in_executor(None, cold_once))
    print(f"2. start -> first output (docker exec echo), {runs} runs alternating")
    show("host bind of the project's volume (mount(2))", attach)
    k50, _ = show("project-keyed spare", keyed)
    u50, _ = show("project-less spare, attached at hand-over", unbound)
    show("cold create+start+exec", cold)
    print(f"  the attach adds p50 {(u50 - k50):+.1f} ms to a warm start")


async def main(runs: int) -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root: it mounts on the engine's host")
    run_id = uuid.uuid4().hex[:6]
    os.environ.update({"THEAPPAPP_POOL_ENABLED": "false", "THEAPPAPP_MONITOR_ENABLED": "false",
                       "THEAPPAPP_STORAGE_ENABLED": "false", "THEAPPAPP_INSTALLATION_ID": f"bench-unbound-{run_id}"})
    manager = ContainerManager(RuntimeConfig.load())
    await manager.startup()
    raw = Raw(manager, "python", manager.config.network.name)
    spares = Projectless(raw)
    projects = {f"bu{run_id}a": "marker-" + uuid.uuid4().hex, f"bu{run_id}b": "marker-" + uuid.uuid4().hex}
    try:
        for project, marker in projects.items():
            raw.volume(project)
            data = Path(volume_path(raw.api, project))
            (data / "marker").write_text(marker + "\n")
            for path in (data, data / "marker"):  # what Docker's copy-up gives a new volume: the sandbox user owns it
                os.chown(path, 1000, 1000)
        print("1. attacks")
        safe = attacks(raw, spares, projects)
        print(f"  {'all passed' if safe else 'SOME FAILED'}")
        await timing(raw, spares, next(iter(projects)), runs)
    finally:
        for cid in list(spares.dirs):
            spares.remove(cid)
        shutil.rmtree(ROOT, ignore_errors=True)
        for project in projects:
            raw.api.remove_volume(f"theappapp-project-{project}", force=True)
        await manager.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
