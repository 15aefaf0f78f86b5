"""Package installs: pip in a new project and in its next task, and what the install layout costs
a task's create. Prints figures; not a test.

    python benchmarks/bench_packages.py [--runs 5] [--creates 30] [--before REF]

1. `pip install six==1.17.0` in a new project's first task (a download from PyPI, through this
   machine's proxy), then the same command in the project's next task, where it finds the
   persisted install, and `import six` there.
2. With `--before REF` (a git commit from before `packages` existed): that commit's python entry
   is built as the language `pybefore` in a worktree, and a cold create -> first output ->
   destroy (pool off) is timed for it and for today's python, interleaved, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from benchlib import show

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "pybefore"


def build_before(ref: str, work: Path) -> Path:
    """Build `ref`'s python entry as `pybefore`; a registry holding it and today's entries."""
    tree = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    try:
        old: dict[str, Any] = yaml.safe_load((tree / "languages.yaml").read_text())
        entry = old["languages"]["python"]
        entry["aliases"] = []
        old["languages"] = {BEFORE: entry}
        (tree / "languages.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
        print(f"building {ref}'s python entry as {BEFORE} ...", flush=True)
        subprocess.run([sys.executable, "-m", "builder", "render"], cwd=tree, check=True, capture_output=True)
        built = subprocess.run([sys.executable, "-m", "builder", "build", BEFORE, "--no-engine-start"], cwd=tree,
                               capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
        if built.returncode:
            raise SystemExit(f"building {BEFORE} failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    today: dict[str, Any] = yaml.safe_load((ROOT / "languages.yaml").read_text())
    today["languages"][BEFORE] = entry
    registry = work / "languages.yaml"
    registry.write_text(yaml.safe_dump(today, sort_keys=False))
    return registry


async def installs(runs: int, run: str) -> None:
    from runtime.config import RuntimeConfig
    from runtime.sandbox.manager import ContainerManager

    manager = ContainerManager(RuntimeConfig.load(monitor_enabled=False))
    await manager.startup()
    first: list[float] = []
    second: list[float] = []
    try:
        for i in range(runs):
            project = f"bench-pkg-{run}-{i}"
            for times in (first, second):
                async with manager.task(f"t{len(times)}", project, "python") as box:
                    t0 = time.perf_counter()
                    result = await box.exec("pip install -q six==1.17.0", timeout=300)
                    times.append(time.perf_counter() - t0)
                    assert result.exit_code == 0, result.stderr
                    assert (await box.exec("python3 -c 'import six'")).exit_code == 0
            await manager.delete_project_volume(project)
    finally:
        await manager.shutdown()
    print("`pip install -q six==1.17.0`")
    show("new project (download from PyPI)", first)
    show("the project's next task (persisted)", second)


async def creates(n: int, run: str) -> None:
    from runtime.config import RuntimeConfig
    from runtime.sandbox.manager import ContainerManager

    manager = ContainerManager(RuntimeConfig.load(pool_enabled=False, monitor_enabled=False))
    await manager.startup()
    times: dict[str, list[float]] = {"python": [], BEFORE: []}
    project = f"bench-pkg-{run}"
    try:
        for i in range(n):
            for language in (("python", BEFORE) if i % 2 else (BEFORE, "python")):
                t0 = time.perf_counter()
                async with manager.task(f"c{i}-{language}", project, language) as box:
                    assert (await box.exec("echo hi")).stdout == "hi\n"
                    times[language].append(time.perf_counter() - t0)
        await manager.settle()
        await manager.delete_project_volume(project)
    finally:
        await manager.shutdown()
    print("cold create -> `echo hi` (pool off, one project, interleaved)")
    after, _ = show("python with `packages` (today)", times["python"])
    before, _ = show(f"python before ({BEFORE})", times[BEFORE])
    print(f"    difference p50 {after - before:+.1f} ms (goal <= +5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="new projects for the pip figures")
    parser.add_argument("--creates", type=int, default=30, help="creates per image for the create figures")
    parser.add_argument("--before", metavar="REF", help="a commit from before `packages`, to compare creates with")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-pkg-{run}")
    with tempfile.TemporaryDirectory() as work:
        if args.before:
            os.environ["THEAPPAPP_REGISTRY"] = str(build_before(args.before, Path(work)))
        asyncio.run(installs(args.runs, run))
        if args.before:
            asyncio.run(creates(args.creates, run))


if __name__ == "__main__":
    main()
