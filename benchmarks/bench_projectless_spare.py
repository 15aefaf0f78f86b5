"""Issue 13, item 5: a spare bound to no project, its /workspace attached at hand-over. An experiment, not a test.

    python benchmarks/bench_projectless_spare.py [--runs 30]

Needs root and a local engine (it mounts on the engine's host). The mechanism tried: each spare gets a
host directory of its own under /run, made a shared mount point in a peer group of its own, bound into
the container at /workspace with `rslave` propagation. At hand-over the manager binds the project's
volume onto a private staging mount, makes that bind private (a bind joins the peer group of the
filesystem the volume lives on, and a copy in the spare would go on receiving that filesystem's mounts),
and moves it onto the spare's directory; the move propagates into the running container, which then
sees the project at /workspace. The container, with no capabilities, cannot mount or unmount anything.

Prints, from one run:
1. The attacks tried (each line PASS or FAIL): a spare sees nothing before hand-over; after it, each
   task sees its own project and no trace of another's (a search of the whole filesystem for the other
   project's marker, which finds the task's own; its mount table); a mount the host makes under the
   volume afterwards does not reach the task; a task cannot unmount or cover its /workspace; once a
   task ends its project is mounted nowhere on the host, and a later spare sees nothing of it; the
   task's writes stay on its project's volume.
2. What the attach costs (the volume's lookup and the three mount calls) and start -> first output
   (`docker exec echo`) for a project-keyed spare against a project-less spare attached at hand-over,
   alternating, with a cold create+start+exec for scale.

Left out, which a pool built on it would add: a new project's volume must exist and belong to the sandbox
user before the attach (Docker's copy-up never happens for a bind; here it is made and chowned before
the clock starts), and a language with a cache volume (Go's /cache) needs a second directory and attach.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import re
import time
import uuid
from pathlib import Path

import docker
from bench_pool import Raw
from benchlib import remove_volumes, show
from docker.types import Mount

from runtime.backends.docker.hostconfig import create_kwargs, host_config
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

MS_BIND, MS_MOVE, MS_PRIVATE, MS_SHARED, MNT_DETACH = 4096, 8192, 1 << 18, 1 << 20, 2
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
ROOT = Path("/run/theappapp-sandbox/bench-spares")  # a directory per run under it


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    if LIBC.mount(src, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if LIBC.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def own_mount(path: Path, propagation: int) -> None:
    """`path` made a mount point of its own (a bind onto itself) with the given propagation."""
    _mount(str(path), str(path), MS_BIND)
    _mount(None, str(path), MS_PRIVATE)  # first out of the parent's peer group ...
    if propagation != MS_PRIVATE:
        _mount(None, str(path), propagation)  # ... then, if shared, in a peer group of its own


class Projectless:
    """Spares with a shared host directory at /workspace, attached to a project's volume at hand-over."""

    def __init__(self, raw: Raw, root: Path) -> None:
        self.raw = raw
        self.root = root
        self.dirs: dict[str, Path] = {}  # container id (or, until it exists, the spare's name) -> its directory
        self.stage = root / "stage"  # where a volume's bind is cut loose before it goes to a spare
        self.stage.mkdir(parents=True)
        own_mount(self.stage, MS_PRIVATE)

    def make(self) -> str:
        name = "s" + uuid.uuid4().hex[:10]
        spot = self.root / name
        spot.mkdir()
        self.dirs[name] = spot  # recorded at once: a failure below still leaves it to `close`
        own_mount(spot, MS_SHARED)  # what lands on it reaches its spare, and only that
        spec = self.raw.spec("unbound", name)
        kwargs = host_config(spec)
        # The workspace only: a language with a cache volume (Go's /cache) would need a second directory.
        kwargs["mounts"] = [Mount(spec.workspace.target, str(spot), type="bind", propagation="rslave")]
        built = self.raw.api.create_host_config(**kwargs)
        cid = str(self.raw.api.create_container(**create_kwargs(spec, built))["Id"])
        self.dirs[cid] = self.dirs.pop(name)
        self.raw.api.start(cid)
        return cid

    def attach(self, cid: str, project: str) -> float:
        """Bind the project's volume into the running spare; the time it took, volume lookup included."""
        t0 = time.perf_counter()
        source = volume_path(self.raw.api, project)
        staged = self.stage / cid[:12]
        staged.mkdir()
        try:
            # A bind of the volume joins the peer group of the filesystem the volume lives on (the host's root
            # here), and a copy made from it in the spare would stay that group's slave: whatever the host
            # later mounts under the volume would reach the task. So: bound where nothing propagates (a
            # private mount), cut loose (private), and only then moved onto the spare's shared directory,
            # which gives the spare a copy that follows this mount alone.
            _mount(source, str(staged), MS_BIND)
            _mount(None, str(staged), MS_PRIVATE)
            _mount(str(staged), str(self.dirs[cid]), MS_MOVE)
        except BaseException:
            while mounts_at(staged):  # a step failed after the bind: undo it, or the volume stays bound here
                _umount(str(staged))
            raise
        finally:
            staged.rmdir()
        return time.perf_counter() - t0

    def remove(self, key: str) -> None:
        """The spare's container (if made), then its directory's mounts, then the directory; forgotten only
        once all of that is done, so a failed step is tried again by `close`."""
        spot = self.dirs[key]
        try:
            with contextlib.suppress(docker.errors.NotFound):
                self.raw.remove(key)
        finally:
            while mounts_at(spot):  # the project's bind, then the directory's own
                _umount(str(spot))
            spot.rmdir()
        del self.dirs[key]

    def close(self) -> None:
        """Every spare, each tried even when another fails; the first failure is raised at the end."""
        failed: list[BaseException] = []
        for key in list(self.dirs):
            try:
                self.remove(key)
            except Exception as err:  # the others still go
                failed.append(err)
        while mounts_at(self.stage):
            _umount(str(self.stage))
        self.stage.rmdir()
        if failed:
            raise failed[0]
        self.root.rmdir()  # never a recursive delete: a directory still bound would take a project with it

    @property
    def clean(self) -> bool:
        """Nothing of the spares is left mounted (so the projects' volumes may go)."""
        return not self.dirs


def mountinfo(pid: str = "self") -> list[list[str]]:
    """The mount table, each line's fields with mountinfo's octal escapes (space, tab, newline, \\) decoded."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as table:
        return [[re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), f) for f in line.split()] for line in table]


def mounts_at(path: Path) -> int:
    """How many mounts are stacked at `path` (a bind from the same filesystem is no `os.path.ismount`)."""
    return sum(1 for fields in mountinfo() if fields[4] == str(path))


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
    spares.attach(s1, p1)
    spares.attach(s2, p2)
    ok &= check("after hand-over each task sees its own project",
                m1 in run(raw, s1, "cat /workspace/marker")[1] and m2 in run(raw, s2, "cat /workspace/marker")[1])
    search = "grep -rls --exclude-dir=proc --exclude-dir=sys {} / 2>/dev/null; true"
    for me, mine, other, marker, own in ((s1, p1, p2, m2, m1), (s2, p2, p1, m1, m2)):
        # The same search finds the task's own marker: a search that could not find anything proves nothing.
        ok &= check("the search finds the task's own project", run(raw, me, search.format(own))[1].strip()
                    == "/workspace/marker")
        code, out = run(raw, me, search.format(marker))
        ok &= check(f"a task finds no file of project {other} anywhere in its filesystem", not out.strip(),
                    out.strip())
        table = [line.split() for line in run(raw, me, "cat /proc/self/mountinfo")[1].splitlines()]
        at_workspace = [fields[3] for fields in table if fields[4] == "/workspace"]
        ok &= check("the top mount at its /workspace is its own project's volume, and no other's is mounted",
                    bool(at_workspace) and f"project-{mine}/" in at_workspace[-1]
                    and not any(f"project-{other}/" in fields[3] for fields in table), str(at_workspace))
    data1 = Path(volume_path(raw.api, p1))
    under = data1 / "host-mount"
    under.mkdir()
    if LIBC.mount(b"tmpfs", str(under).encode(), b"tmpfs", 0, b"size=1m") != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs")
    try:
        (under / "host-only").write_text("mounted on the host after the hand-over\n")
        code, out = run(raw, s1, "ls -A /workspace/host-mount")
        ok &= check("a mount the host makes under the project's volume later does not reach the task",
                    code == 0 and "host-only" not in out, out)
    finally:
        _umount(str(under))
        under.rmdir()
    code, out = run(raw, s1, "umount /workspace 2>&1; mount -t tmpfs none /workspace 2>&1; cat /workspace/marker")
    ok &= check("a task cannot unmount or cover its /workspace (refused as not root)",
                out.count("must be superuser") == 2 and m1 in out, out)
    code, out = run(raw, s1, "echo written-by-task > /workspace/from-task && cat /workspace/from-task")
    ok &= check("the task writes to its project", code == 0 and "written-by-task" in out, out)
    spares.remove(s1)
    ok &= check("the file is on project 1's volume after the task",
                (data1 / "from-task").read_text().strip() == "written-by-task")
    # The mount's root is its path inside its own filesystem: Docker's data root may be a filesystem of its own.
    ok &= check("once its task is gone, project 1 is mounted nowhere on the host",
                not any(f"/theappapp-project-{p1}/_data" in fields[3] for fields in mountinfo()))
    s3 = spares.make()
    code, out = run(raw, s3, f"ls -A /workspace; grep -rls --exclude-dir=proc --exclude-dir=sys {m1} / 2>/dev/null;:")
    ok &= check("a later spare sees nothing of project 1", not out.strip(), out)
    spares.remove(s2)
    spares.remove(s3)
    return ok


async def timing(raw: Raw, spares: Projectless, project: str, runs: int) -> None:
    loop = asyncio.get_running_loop()
    keyed, unbound, attach, cold = [], [], [], []

    def keyed_once() -> float:
        cid = raw.create_started(project, "k" + uuid.uuid4().hex[:8])
        time.sleep(0.3)  # the spare sits ready, as in the pool
        try:
            t0 = time.perf_counter()
            run(raw, cid, "echo hi")
            return time.perf_counter() - t0
        finally:
            raw.remove(cid)

    def unbound_once() -> tuple[float, float]:
        cid = spares.make()
        try:
            time.sleep(0.3)
            t0 = time.perf_counter()
            bind = spares.attach(cid, project)
            run(raw, cid, "echo hi")
            return time.perf_counter() - t0, bind
        finally:
            spares.remove(cid)

    def cold_once() -> float:
        t0 = time.perf_counter()
        cid = raw.create_started(project, "c" + uuid.uuid4().hex[:8])
        try:
            run(raw, cid, "echo hi")
            return time.perf_counter() - t0
        finally:
            raw.remove(cid)

    for _ in range(runs):
        keyed.append(await loop.run_in_executor(None, keyed_once))
        took, bind = await loop.run_in_executor(None, unbound_once)
        unbound.append(took)
        attach.append(bind)
        cold.append(await loop.run_in_executor(None, cold_once))
    print(f"2. start -> first output (docker exec echo), {runs} runs alternating")
    show("attach: volume lookup + bind, cut loose, move", attach)
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
    raw = Raw(manager, "python", manager.config.network.name)
    projects = {f"bu{run_id}a": "marker-" + uuid.uuid4().hex, f"bu{run_id}b": "marker-" + uuid.uuid4().hex}
    spares: Projectless | None = None
    try:
        await manager.startup()
        spares = Projectless(raw, ROOT / run_id)
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
        try:
            if spares is not None:
                spares.close()
        finally:
            try:
                # A volume still bound into a spare's directory stays: removing it would empty a mounted tree.
                if spares is None or spares.clean:
                    remove_volumes(raw.api, (f"theappapp-project-{project}" for project in projects))
            finally:
                await manager.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
