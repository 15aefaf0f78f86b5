"""Sessions and background processes, against a one-shot exec in the same run. Prints figures; not a test.

    python benchmarks/bench_sessions.py [--runs 100]

1. A trivial step, p50/p90: `exec_command("true")`; a shell session's `run("true")`; a python
   session's `run("1+1")` (an IPython kernel in the sandbox).
2. Opening a session: shell, python (the kernel's start).
3. start_process("sleep 60") until its pid is known.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

from benchlib import show, timed

from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager


async def main(runs: int) -> None:
    run = uuid.uuid4().hex[:8]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-sessions-{run}")
    manager = ContainerManager(RuntimeConfig.load(network="none", monitor_enabled=False))
    await manager.startup()
    try:
        async with manager.task(f"t{run}", f"bench-sessions-{run}", "python") as box:
            print(f"sessions benchmark: python image, {runs} runs")
            print("1. a trivial step")
            show("exec_command('true')", await timed(runs, lambda: box.exec("true")))
            async with box.session("shell") as shell:
                show("shell session run('true')", await timed(runs, lambda: shell.run("true")))
            async with box.session("python") as kernel:
                await kernel.run("1+1")
                show("python session run('1+1')", await timed(runs, lambda: kernel.run("1+1")))
            print("2. opening a session (and closing it)")

            async def open_close(kind: str) -> None:
                session = await manager.open_session(box.task_id, kind)
                await session.close()

            show("shell", await timed(max(3, runs // 10), lambda: open_close("shell")))
            show("python (kernel start)", await timed(max(3, runs // 20), lambda: open_close("python")))
            print("3. a background process")

            async def start_kill() -> None:
                info = await manager.start_process(box.task_id, "sleep 60")
                await manager.kill_process(box.task_id, info.pid, "KILL")
                await manager.wait_process(box.task_id, info.pid, timeout=10)

            show("start_process until its pid (then killed)", await timed(max(3, runs // 5), start_kill))
        await manager.delete_project_volume(f"bench-sessions-{run}")
    finally:
        await manager.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
