"""Exec semantics against the real engine: timeouts kill the tree, caps, bounded memory, stdin/env/workdir,
streaming, OOM reporting, undecodable output."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.backends.docker.exec import host_kill
from runtime.errors import FileMissing, InvalidIdentifier, InvalidPath
from runtime.sandbox.manager import ContainerManager, Sandbox
from tests.integration.conftest import IDLE_PROCESSES

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


async def _processes(sandbox: Sandbox) -> list[str]:
    """Command lines of every process in the container except the `ps` that lists them."""
    result = await sandbox.exec("ps -eo pid=,args=")
    return [line.split(None, 1)[1] for line in result.stdout.splitlines()
            if "ps -eo" not in line and not line.endswith("sandbox-agent.pyc health")]  # the engine's health check


async def test_timeout_kills_background_setsid_nohup_and_term_trapping_children(sandbox: Sandbox) -> None:
    command = (
        "sleep 301 & "
        "setsid sleep 302 & "
        "nohup sleep 303 >/dev/null 2>&1 & "
        "bash -c 'trap \"\" TERM HUP INT; while :; do sleep 304; done' & "
        "(setsid bash -c 'sleep 305 & disown' &) ; "
        "echo started; sleep 300"
    )
    t0 = time.monotonic()
    result = await sandbox.exec(command, timeout=2)
    elapsed = time.monotonic() - t0
    assert result.timed_out and not result.ok
    assert result.stdout == "started\n"  # the output produced before the deadline is kept
    assert elapsed < 2 + 2
    assert await _processes(sandbox) == IDLE_PROCESSES
    after = await sandbox.exec("echo still usable")
    assert after.stdout == "still usable\n" and not after.timed_out


async def test_stdout_and_stderr_are_capped_drained_and_flagged(sandbox: Sandbox) -> None:
    result = await sandbox.exec("head -c 3000000 /dev/zero | tr '\\0' o; head -c 5000 /dev/zero | tr '\\0' e >&2")
    assert result.exit_code == 0  # drained past the cap: the writer was never blocked
    assert len(result.stdout) == MiB and set(result.stdout) == {"o"}
    assert result.stderr == "e" * 5000
    assert result.truncated and (result.stdout_bytes, result.stderr_bytes) == (3000000, 5000)
    small = await sandbox.exec("seq 1 1000", max_output_bytes=10)
    assert small.stdout == "1\n2\n3\n4\n5\n" and small.truncated


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_one_gib_flood_keeps_the_callers_memory_bounded(sandbox: Sandbox) -> None:
    peak = before = _rss()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    result = await sandbox.exec("head -c 1073741824 /dev/zero", timeout=120)
    done.set()
    await sampler
    assert result.exit_code == 0 and result.truncated
    assert result.stdout_bytes == 1 << 30
    growth = peak - before
    # One capped copy plus its decoded str, plus stream buffers: a few MiB over the cap.
    assert growth < 8 * MiB, f"caller RSS grew by {growth / MiB:.1f} MiB"


async def test_invalid_utf8_and_nul_bytes_never_raise(sandbox: Sandbox) -> None:
    result = await sandbox.exec("printf 'a\\xff\\xfeb\\x00c\\xe2\\x82'; printf '\\x00\\xc3' >&2")
    assert result.stdout == "a\ufffd\ufffdb\x00c\ufffd"
    assert result.stderr == "\x00\ufffd"
    chunks = [chunk async for chunk in sandbox.stream("printf '\\xff\\x00'")]
    assert b"".join(c.data for c in chunks) == b"\xff\x00"


async def test_stdin_env_and_workdir(sandbox: Sandbox) -> None:
    payload = b"\x00\xffbinary" * 700_000  # ~6 MB: more than any pipe or socket buffer
    result = await sandbox.exec("wc -c; sha256sum", stdin=payload)
    assert result.stdout.split()[0] == str(len(payload))
    text = await sandbox.exec("cat", stdin="héllo")
    assert text.stdout == "héllo"
    env = await sandbox.exec('printf "%s|%s" "$GREETING" "$HOME"', env={"GREETING": "hi there; $(rm -rf /)"})
    assert env.stdout == "hi there; $(rm -rf /)|/home/sandbox"
    await sandbox.exec("mkdir -p sub/dir")
    assert (await sandbox.exec("pwd", workdir="sub/dir")).stdout == "/workspace/sub/dir\n"
    assert (await sandbox.exec("pwd", workdir="/workspace/sub")).stdout == "/workspace/sub\n"
    for bad in ("/etc", "../etc", "sub/../../etc", "/workspace/../etc"):
        with pytest.raises(InvalidPath):
            await sandbox.exec("pwd", workdir=bad)
    with pytest.raises(FileMissing, match="'nowhere' does not exist"):  # not "pwd: command not found"
        await sandbox.exec("pwd", workdir="nowhere")
    with pytest.raises(InvalidIdentifier):
        await sandbox.exec("true", env={"BAD NAME": "x"})


async def test_stream_yields_chunks_as_they_arrive_and_sets_the_result(sandbox: Sandbox) -> None:
    stream = sandbox.stream("for i in 1 2 3; do echo $i; sleep 0.4; done; echo bye >&2")
    t0 = time.monotonic()
    seen: list[tuple[str, str, float]] = []
    async for chunk in stream:
        seen.append((chunk.stream, chunk.text, time.monotonic() - t0))
    expected = [("stdout", "1\n"), ("stdout", "2\n"), ("stdout", "3\n"), ("stderr", "bye\n")]
    assert [(s, t) for s, t, _ in seen] == expected
    assert seen[0][2] < 0.4 < seen[1][2]  # the first line came before the command finished
    assert stream.result is not None and stream.result.exit_code == 0 and stream.result.stdout == "1\n2\n3\n"


async def test_stream_abandoned_by_the_caller_kills_the_command(sandbox: Sandbox) -> None:
    stream = sandbox.stream("echo first; setsid sleep 500 & sleep 500")
    async for chunk in stream:
        assert chunk.text == "first\n"
        break
    await stream.__aiter__().aclose()  # type: ignore[attr-defined]
    assert await _processes(sandbox) == IDLE_PROCESSES
    assert stream.result is not None and stream.result.exit_code is None and stream.result.stdout == "first\n"


async def test_oom_kill_is_reported_for_the_command_and_for_a_child(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t{unique}", f"p{unique}", "python") as sandbox:
        hog = "python3 -c 'x = b\"x\" * (3 * 1024**3)'"  # 3 GiB of written pages, limit is 1 GiB
        direct = await sandbox.exec(f"exec {hog}")
        assert direct.oom_killed and direct.exit_code == 137
        child = await sandbox.exec(f"{hog}; echo survived")
        assert child.oom_killed and child.exit_code == 0 and child.stdout == "survived\n"
        fine = await sandbox.exec("python3 -c 'x = b\"x\" * (100 * 1024**2)'")
        assert not fine.oom_killed and fine.exit_code == 0
        # Without the host's view of the cgroup, the counter is read from inside the container.
        manager.backend._target(manager.task_info(f"t{unique}").container_id).cgroup = None
        inside = await sandbox.exec(f"exec {hog}")
        assert inside.oom_killed and inside.exit_code == 137
        killed = await sandbox.exec("kill -KILL $$")
        assert killed.exit_code == 137 and not killed.oom_killed


async def test_host_side_fallback_killer_spares_only_init_and_keeper(
    manager: ContainerManager, sandbox: Sandbox
) -> None:
    target = manager.backend._target(sandbox.info.container_id)
    if target.cgroup is None or not target.host_kill:
        pytest.skip("the container's cgroup is not on this host (remote engine or another OCI runtime)")
    await sandbox.exec("setsid sleep 401 & nohup sleep 402 >/dev/null 2>&1 & disown; true")
    assert len(await _processes(sandbox)) == 4
    await asyncio.get_running_loop().run_in_executor(None, host_kill, target.cgroup)
    assert await _processes(sandbox) == IDLE_PROCESSES
