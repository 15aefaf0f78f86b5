"""Operations figures: run_code's overhead over a bare exec, the CLI one-shot, and cleanup.

    python benchmarks/bench_ops.py [--runs 20] [--orphans 10]

1. run_code (validate + write the file + exec) vs exec_command of the same program
   already in place, in one python sandbox: median and p95 per call.
2. `python -m runtime.cli run python -c 'print(1)'` wall time (process start included).
3. Cleanup: a subprocess manager makes N tasks and is SIGKILLed; time to find and
   remove the orphans. Uses its own installation id; removes everything it made.
Not a timed test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from benchlib import remove_volumes

from runtime import labels
from runtime.backends import open_backend
from runtime.config import RuntimeConfig
from runtime.ops.cleanup import cleanup
from runtime.sandbox.manager import ContainerManager

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = "import math\n" + "".join(f"x{i} = math.sqrt({i})\n" for i in range(60)) + "print(x59)\n"  # ~1 KB


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_code_overhead(runs: int, installation: str) -> None:
    manager = ContainerManager(RuntimeConfig.load(installation_id=installation, network="none", pool_enabled=False))
    await manager.startup()
    project = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        await manager.create_container("bench", project, "python")
        await manager.run_code("bench", SNIPPET)  # warm: validator grammars, page cache
        with_run, bare = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            await manager.run_code("bench", SNIPPET)
            with_run.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await manager.exec_command("bench", "python3 main.py")
            bare.append(time.perf_counter() - t0)
        print(f"run_code ({len(SNIPPET)} B python): median {statistics.median(with_run) * 1000:.1f} ms, "
              f"p95 {pct(with_run, 0.95) * 1000:.1f} ms")
        print(f"exec_command same program:      median {statistics.median(bare) * 1000:.1f} ms, "
              f"p95 {pct(bare, 0.95) * 1000:.1f} ms")
        await manager.destroy_container("bench")
        await manager.delete_project_volume(project)
    finally:
        await manager.shutdown()


def cli_one_shot(runs: int, installation: str) -> None:
    env = dict(os.environ, THEAPPAPP_INSTALLATION_ID=installation)
    with tempfile.TemporaryDirectory() as tmp:
        env["THEAPPAPP_MONITOR_DB"] = str(Path(tmp) / "m.sqlite3")
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "runtime.cli", "run", "python", "-q", "-c", "print(1)"],
                                  env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - t0)
            assert done.stdout == "1\n", done.stderr
    print(f"CLI one-shot run python -c 'print(1)': median {statistics.median(times):.2f} s, max {max(times):.2f} s "
          f"({runs} runs, interpreter start included)")


def cleanup_orphans(orphans: int, installation: str) -> None:
    script = (
        "import asyncio, sys\nfrom runtime.sandbox.manager import ContainerManager\n"
        "async def main():\n    m = ContainerManager()\n    await m.startup()\n"
        f"    await asyncio.gather(*(m.create_container(f't{{i}}', 'benchproj', 'python') for i in range({orphans})))\n"
        "    print('READY', flush=True)\n    await asyncio.sleep(3600)\nasyncio.run(main())\n"
    )
    env = dict(os.environ, THEAPPAPP_INSTALLATION_ID=installation, THEAPPAPP_NETWORK="none",
               THEAPPAPP_POOL_ENABLED="false", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    client = docker.from_env()
    backend = open_backend(RuntimeConfig.load(installation_id=installation))
    t0 = time.perf_counter()
    report = asyncio.run(cleanup(backend, installation))
    took = time.perf_counter() - t0
    backend.close()
    print(f"cleanup: {len(report.removed)} orphans of a SIGKILLed manager removed in {took:.2f} s")
    remove_volumes(client.api, ["theappapp-project-benchproj"])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--orphans", type=int, default=10)
    args = parser.parse_args()
    installation = f"bench-ops-{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(run_code_overhead(args.runs, installation))
        cli_one_shot(max(3, args.runs // 4), installation)
        cleanup_orphans(args.orphans, installation)
    finally:
        client = docker.from_env()
        ours: dict[str, str | list[str] | bool] = {"label": [f"{labels.INSTALLATION}={installation}"]}
        for container in client.containers.list(all=True, filters=ours):
            container.remove(force=True)
        remove_volumes(client.api, (v.name for v in client.volumes.list(filters=ours)))


if __name__ == "__main__":
    main()
