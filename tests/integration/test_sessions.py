"""Shell sessions and background processes on a real engine, through the sandbox agent."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.errors import InvalidRequest, SessionClosed, TaskNotFound
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.manager import ContainerManager

pytestmark = pytest.mark.integration


async def test_cd_export_and_functions_stay_and_each_command_has_its_exit_code(sandbox: Sandbox) -> None:
    async with sandbox.session("shell") as shell:
        first = await shell.run("mkdir -p sub/dir && cd sub && export GREETING=hi\ngreet() { echo \"$1 $GREETING\"; }")
        assert first.exit_code == 0 and not first.still_running
        assert (await shell.run("pwd")).stdout == "/workspace/sub\n"
        assert (await shell.run("greet there")).stdout == "there hi\n"
        failed = await shell.run("echo to-err >&2; false")
        assert (failed.exit_code, failed.stdout, failed.stderr) == (1, "", "to-err\n")
        assert (await shell.run("exit_code_test() { return 7; }; exit_code_test")).exit_code == 7
        multi = await shell.run("for i in 1 2 3; do\n  echo line $i\ndone\nprintf 'no newline'")
        assert multi.stdout == "line 1\nline 2\nline 3\nno newline"


async def test_output_cannot_forge_the_end_marker(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        # The marker's shape, with a made-up nonce and status, in the middle of the output.
        forged = await shell.run(r"printf 'a\n\036TAP:0123456789abcdef0123456789abcdef:0\nb\n'; sleep 0.2; echo c")
        assert forged.exit_code == 0
        assert forged.stdout.endswith("b\nc\n") and "\x1eTAP:" in forged.stdout


async def test_idle_timeout_returns_early_then_input_and_read_more_finish_the_command(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        t0 = time.monotonic()
        waiting = await shell.run("echo 'name?'; read name; echo \"hello $name\"", idle_timeout=1.0, timeout=30)
        assert waiting.still_running and waiting.exit_code is None
        assert waiting.stdout == "name?\n"
        assert time.monotonic() - t0 < 10
        with pytest.raises(InvalidRequest, match="still running"):
            await shell.run("echo not now")
        await shell.send_input("agent\n")
        done = await shell.read_more(timeout=10)
        assert (done.still_running, done.exit_code, done.stdout) == (False, 0, "hello agent\n")


async def test_interrupt_stops_the_foreground_command_and_keeps_the_shell(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        await shell.run("KEEP=kept")
        running = await shell.run("echo started; sleep 300", idle_timeout=1.0)
        assert running.still_running and running.stdout == "started\n"
        stopped = await shell.interrupt()
        assert stopped.exit_code == 130 and not stopped.still_running
        assert (await shell.run("echo $KEEP")).stdout == "kept\n"


async def test_a_timeout_interrupts_and_one_that_ignores_it_ends_only_its_session(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        slow = await shell.run("sleep 300", timeout=1.0)
        assert slow.timed_out and slow.exit_code == 130
        assert (await shell.run("echo alive")).stdout == "alive\n"
        stubborn = await shell.run("trap '' INT; sleep 300", timeout=1.0)
        assert stubborn.timed_out and stubborn.exit_code is None
        with pytest.raises(SessionClosed):
            await shell.run("echo gone")
    # The task is untouched: plain exec and a new session work.
    assert (await sandbox.exec("echo still here")).stdout == "still here\n"
    async with sandbox.session() as again:
        assert (await again.run("echo new")).stdout == "new\n"


async def test_a_flood_of_output_is_capped_and_the_session_goes_on(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        flood = await shell.run("head -c 5000000 /dev/zero | tr '\\0' x", timeout=60)
        assert flood.exit_code == 0 and flood.truncated
        assert len(flood.stdout) <= 1024 * 1024
        assert (await shell.run("echo after")).stdout == "after\n"


async def test_an_unknown_session_kind_names_the_kinds_there_are(manager: ContainerManager, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidRequest, match="python has no 'cobol' session; it has: python, shell"):
        await manager.open_session(sandbox.task_id, kind="cobol")


async def test_a_background_server_is_queried_from_a_second_command_and_killed(
    manager: ContainerManager, sandbox: Sandbox
) -> None:
    server = await sandbox.start_process("python3 -u -m http.server 8321 --bind 127.0.0.1", name="web")
    assert server.running and server.pid > 1 and server.name == "web"
    body = ""
    for _ in range(50):  # the server binds within a second or so
        result = await sandbox.exec("curl -s http://127.0.0.1:8321/ || true", timeout=10)
        body = result.stdout
        if "Directory listing" in body:
            break
        await asyncio.sleep(0.2)
    assert "Directory listing" in body
    assert [p.pid for p in manager.list_processes(sandbox.task_id)] == [server.pid]
    logged = b"".join([c.data async for c in manager.process_output(sandbox.task_id, server.pid)])
    assert b"GET / HTTP/1.1" in logged  # its request log, from the start
    await manager.kill_process(sandbox.task_id, server.pid, "TERM")
    final = await manager.wait_process(sandbox.task_id, server.pid, timeout=10)
    assert not final.running and final.exit_code is not None
    assert (await sandbox.exec("curl -s -m 2 http://127.0.0.1:8321/ >/dev/null; echo $?")).stdout.strip() != "0"


async def test_a_background_process_reads_its_stdin_and_follow_streams_until_it_exits(
    manager: ContainerManager, sandbox: Sandbox
) -> None:
    proc = await sandbox.start_process("while read line; do echo \"got $line\"; [ \"$line\" = bye ] && exit 3; done")
    follower = asyncio.ensure_future(_collect(manager.process_output(sandbox.task_id, proc.pid, follow=True)))
    await manager.send_stdin(sandbox.task_id, proc.pid, "one\n")
    await manager.send_stdin(sandbox.task_id, proc.pid, "bye\n")
    final = await manager.wait_process(sandbox.task_id, proc.pid, timeout=10)
    assert final.exit_code == 3 and not final.running
    assert await asyncio.wait_for(follower, 10) == b"got one\ngot bye\n"
    with pytest.raises(InvalidRequest, match="exited"):
        await manager.send_stdin(sandbox.task_id, proc.pid, "late\n")


async def test_closing_a_session_ends_what_it_started_in_the_background(sandbox: Sandbox) -> None:
    shell = await sandbox.manager.open_session(sandbox.task_id)
    await shell.run("sleep 611 &")
    assert "sleep 611" in (await sandbox.exec("ps -eo args")).stdout
    await shell.close()
    assert shell.closed
    assert "sleep 611" not in (await sandbox.exec("ps -eo args")).stdout
    with pytest.raises(SessionClosed):
        await shell.run("echo no")


async def test_a_loop_stops_at_an_interrupt_as_at_a_terminal(sandbox: Sandbox) -> None:
    async with sandbox.session() as shell:
        looping = await shell.run("for i in 1 2 3 4 5 6; do echo $i; sleep 1; done; echo not-reached", timeout=1.5)
        assert looping.timed_out and looping.exit_code == 130 and "not-reached" not in looping.stdout
        redirected = await shell.run("exec 2>/dev/null; echo still-marked")
        assert redirected.exit_code == 0 and redirected.stdout == "still-marked\n"  # the end still arrives


async def test_processes_and_sessions_end_with_their_task(manager: ContainerManager, unique: str) -> None:
    async with manager.task(f"t{unique}", f"p{unique}", "python") as box:
        await box.start_process("sleep 600")
        shell = await manager.open_session(box.task_id)
        assert manager.list_processes(box.task_id)[0].running
    assert shell.closed
    with pytest.raises(SessionClosed):
        await shell.run("echo no")
    with pytest.raises(TaskNotFound):
        manager.list_processes(box.task_id)


async def _collect(chunks: object) -> bytes:
    out = b""
    async for chunk in chunks:  # type: ignore[attr-defined]
        out += chunk.data
    return out


async def test_a_fork_bomb_in_a_session_is_bounded_and_ends_with_the_session(sandbox: Sandbox) -> None:
    shell = await sandbox.manager.open_session(sandbox.task_id)
    bomb = await shell.run("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=2)
    assert bomb.timed_out
    await shell.close()  # the agent kills everything the session started
    for _ in range(50):
        result = await sandbox.exec("ps -eo args | grep -c '^bash --noprofile' || true", timeout=10)
        if result.exit_code == 0 and result.stdout.strip() == "0":
            break
        await asyncio.sleep(0.2)
    assert result.stdout.strip() == "0", result
    assert (await sandbox.exec("echo usable")).stdout == "usable\n"  # the pids limit held; the task goes on
