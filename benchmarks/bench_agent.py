"""The command path through the in-sandbox agent, against raw docker-py in the same run. Prints figures.

    python benchmarks/bench_agent.py [--runs 100]

1. `exec_command("true")` round trip, against docker-py's `exec_run` (create, start, inspect)
   on the same container.
2. `exec_command("python3 -c 'print(1)'")`, against the bare process start inside the
   container (a loop in the container timing the same program with subprocess).
3. Warm start: a spare is ready; create_container, then the first output of `echo`.
4. run_code of a 1 KB Python file.
5. 100 concurrent `exec_command("true")` on one task.
6. The transport: the agent as the container's main process on its attach stream (what the
   runtime uses) against the same agent started per connection with `docker exec -i`.
7. The agent's own start, which every spare, holder and cold task pays: inside the container, the
   agent started as containers start it until it answers `hello`, then stdin closed; wall time and
   the CPU it used (its rusage), against the bare interpreter (`python3 -I -S -c pass`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import time
import uuid

import docker
from benchlib import pct, show, timed

from runtime import labels
from runtime.backends.docker.agent_channel import AgentChannel
from runtime.backends.docker.exec import Executor
from runtime.backends.docker.hijack import start_exec
from runtime.backends.docker.hostconfig import agent_command
from runtime.config import RuntimeConfig
from runtime.sandbox.manager import ContainerManager

SNIPPET = "import math\n" + "".join(f"x{i} = math.sqrt({i})\n" for i in range(60)) + "print(x59)\n"  # ~1 KB
INSIDE = (
    "import subprocess, time, sys\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    t0 = time.perf_counter(); subprocess.run(['python3', '-c', 'print(1)'], stdout=subprocess.PIPE)\n"
    "    print(time.perf_counter() - t0)\n"
)
# Run inside the sandbox with the agent's command (JSON) and a count: per start, "wall cpu" seconds of the
# agent up to its answer to `hello` (a frame by hand: the runtime is not in the image), or of the bare
# interpreter; the CPU from wait4's rusage, so the process's own start, not the container's.
AGENT_START = (
    "import json, os, struct, subprocess, sys, time\n"
    "agent, n = json.loads(sys.argv[1]), int(sys.argv[2])\n"
    "head = json.dumps({'op': 'hello', 'id': 1}).encode()\n"
    "hello = struct.pack('>IH', len(head), len(head)) + head\n"
    "def started(argv, ask):\n"
    "    t0 = time.perf_counter()\n"
    "    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
    "    if ask:\n"
    "        p.stdin.write(hello); p.stdin.flush()\n"
    "        assert b'hello' in p.stdout.read1(65536)\n"
    "        wall = time.perf_counter() - t0\n"
    "    p.stdin.close()\n"
    "    _, _, use = os.wait4(p.pid, 0)\n"
    "    p.returncode = 0\n"
    "    if not ask:\n"
    "        wall = time.perf_counter() - t0\n"
    "    return wall, use.ru_utime + use.ru_stime\n"
    "for _ in range(n):\n"
    "    print('agent %f %f' % started(agent, True))\n"
    "    print('bare %f %f' % started(['/usr/bin/python3', '-I', '-S', '-c', 'pass'], False))\n"
)


async def main(runs: int) -> None:
    run = uuid.uuid4().hex[:8]
    os.environ.setdefault("THEAPPAPP_INSTALLATION_ID", f"bench-agent-{run}")
    config = RuntimeConfig.load(network="none", monitor_enabled=False)
    manager = ContainerManager(config)
    await manager.startup()
    client = docker.from_env()
    project = f"bench-agent-{run}"
    loop = asyncio.get_running_loop()
    try:
        await manager.create_container("main", project, "python")
        cid = manager.task_info("main").container_id
        container = client.containers.get(cid)
        print(f"agent benchmark: python, engine {client.version()['Version']}, {os.cpu_count()} cores, {runs} runs")

        print("1. exec_command('true') round trip")
        mgr_true, raw_true = [], []

        def raw_exec() -> None:
            container.exec_run(["/bin/bash", "-c", "true"], user="1000:1000")

        async def raw_block(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                await loop.run_in_executor(None, raw_exec)
                out.append(time.perf_counter() - t0)
            return out

        # Blocks of 10, alternating, so drift hits both sides alike: a docker exec leaves the engine
        # busy for a moment after it returns, which would tax a call made right after it.
        for _ in range(max(1, runs // 10)):
            mgr_true += await timed(10, lambda: manager.exec_command("main", "true"))
            raw_true += await raw_block(10)
        m, _ = show("manager (agent)", mgr_true)
        r, _ = show("raw docker-py exec_run", raw_true)
        print(f"    ratio manager/raw = {m / r:.3f}   (goal: p50 <= 3 ms and <= 0.1)")
        shell = await timed(runs, lambda: manager.exec_command("main", "true; true"))
        show("manager, a command that needs the shell", shell)

        print("2. exec_command(\"python3 -c 'print(1)'\")")
        await manager.write_files("main", {"inside.py": INSIDE})
        bare: list[float] = []
        via: list[float] = []
        for _ in range(max(1, runs // 10)):  # alternating blocks of 10
            inside = await manager.exec_command("main", "python3 inside.py 10", timeout=300)
            bare += [float(x) for x in inside.stdout.split()]
            via += await timed(10, lambda: manager.exec_command("main", "python3 -c 'print(1)'"))
        v, _ = show("manager (agent)", via)
        b, _ = show("bare process start inside the container", bare)
        print(f"    ratio = {v / b:.3f}   (goal <= 1.1)")

        print("3. warm start: spare ready -> first output of `echo`")
        warm: list[float] = []
        for i in range(min(runs, 30)):
            assert manager.pool is not None
            await manager.prewarm(project, "python", 1)
            deadline = time.monotonic() + 30
            while manager.pool.ready(project, "python") < 1:  # the refill after the last task, still on its way
                assert time.monotonic() < deadline, f"no spare was made: {dict(manager.pool.counts)}"
                await asyncio.sleep(0.01)
            await manager.settle()
            t0 = time.perf_counter()
            await manager.create_container(f"w{i}", project, "python")
            stream = manager.exec_stream(f"w{i}", "echo hi")
            async for _chunk in stream:
                warm.append(time.perf_counter() - t0)
                break
            async for _chunk in stream:
                pass
            await manager.destroy_container(f"w{i}")
        show("create_container + first output", warm)
        print("    (goal p50 <= 10 ms)")

        print("4. run_code of a 1 KB Python file")
        await manager.run_code("main", SNIPPET)  # warm the validator
        runs_code = await timed(runs, lambda: manager.run_code("main", SNIPPET))
        show("run_code", runs_code)
        print("    (goal p50 <= 40 ms)")

        print("5. 100 concurrent exec_command('true') on one task")
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            results = await asyncio.gather(*(manager.exec_command("main", "true") for _ in range(100)))
            took = time.perf_counter() - t0
            assert all(r.ok for r in results)
            rates.append(100 / took)
        print(f"  all 100 complete; throughput median {statistics.median(rates):.0f}/s (min {min(rates):.0f}/s)")

        print("6. transport: attach stream (used) vs an agent per `docker exec -i`")
        channel = await manager.backend._agent(cid)  # type: ignore[attr-defined]
        assert channel is not None
        engine = manager.backend.engine  # type: ignore[attr-defined]
        executor = Executor(engine, "1000:1000")
        image = await manager.backend.image(manager.registry.resolve("python").image)
        assert image is not None
        agent = image.labels[labels.IMAGE_AGENT]
        exec_id = await executor.create(cid, agent_command(agent), stdin=True)  # as containers run it
        bridged = AgentChannel(cid, await start_exec(engine.endpoint(), engine.api_version, exec_id))
        bridged._reader = loop.create_task(bridged._read())
        await bridged.call({"op": "hello"}, 10)

        async def true_on(ch: AgentChannel) -> None:
            rid = await ch.start({"op": "exec", "argv": ["true"], "timeout": 10, "cap": 1 << 20}, allowance=1 << 20)
            while (await ch.reply(rid))[0]["type"] != "exit":
                pass
            ch.finish(rid)

        attach_ping, exec_ping, attach_true, exec_true = [], [], [], []
        for _ in range(runs):
            attach_ping += await timed(1, lambda: channel.call({"op": "ping"}))
            exec_ping += await timed(1, lambda: bridged.call({"op": "ping"}))
            attach_true += await timed(1, lambda: true_on(channel))
            exec_true += await timed(1, lambda: true_on(bridged))
        show("ping, attach stream", attach_ping)
        show("ping, docker exec -i", exec_ping)
        show("`true`, attach stream", attach_true)
        show("`true`, docker exec -i", exec_true)
        print(f"    setting up the exec'd agent costs a docker exec plus a Python start per container; "
              f"p90s {pct(attach_true, 0.9) * 1000:.1f} / {pct(exec_true, 0.9) * 1000:.1f} ms")
        await bridged.close()

        print("7. the agent's own start (inside the container): to its answer to `hello`")
        await manager.write_files("main", {"agent_start.py": AGENT_START})
        argv = shlex.quote(json.dumps(agent_command(agent)))
        started = await manager.exec_command("main", f"python3 agent_start.py {argv} {min(runs, 50)}", timeout=300)
        figures: dict[str, tuple[list[float], list[float]]] = {"agent": ([], []), "bare": ([], [])}
        for line in started.stdout.split("\n"):
            if line:
                kind, wall, cpu = line.split()
                figures[kind][0].append(float(wall))
                figures[kind][1].append(float(cpu))
        for kind, label in (("agent", "agent, start to hello"), ("bare", "bare interpreter, start to exit")):
            show(f"{label}: wall", figures[kind][0])
            show(f"{label}: CPU", figures[kind][1])
        own = statistics.median(figures["agent"][1]) - statistics.median(figures["bare"][1])
        print(f"    the agent's own CPU past the interpreter's start: {own * 1000:.1f} ms per container")
    finally:
        await manager.shutdown()
        await manager.delete_project_volume(project)
        client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
